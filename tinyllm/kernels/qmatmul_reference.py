"""Matrix products with weights kept in llama.cpp's quantized blocks: the weight layout, and the
plain reference (dequantize, then BLAS) of `qmatmul_cpu`.

A GGUF file stores a (out, in) weight row by row in blocks of 32 weights along `in`:

- Q8_0, 34 bytes a block: a float16 scale d and 32 int8 values q; w = d * q;
- Q4_1, 20 bytes a block: a float16 scale d, a float16 minimum m, and 16 bytes of 4-bit values
  (byte i holds weight i in its low nibble and weight i + 16 in its high one); w = d * q + m.

`QuantizedWeight.from_blocks` splits those bytes once into float32 scales (and minimums) of shape
(out, in / 32) and the packed values (out, in for Q8_0, in / 2 for Q4_1), so that a kernel reads
them with plain indexing; that costs 4 bytes a block more than the file (24 instead of 20 for
Q4_1), against 128 bytes a block for float32 weights.

Only inference: `linear(x, weight)` returns x @ W.T and there is no backward.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tinyllm.backend import np
from tinyllm.errors import ShapeError, UnsupportedError

BLOCK = 32
BLOCK_BYTES = {"Q8_0": 34, "Q4_1": 20}


@dataclass(frozen=True)
class QuantizedWeight:
    """A (out_features, in_features) weight in blocks of 32 along in_features (see module doc)."""

    kind: str  # "Q8_0" or "Q4_1"
    scales: np.ndarray  # (out, in / 32) float32
    mins: np.ndarray | None  # (out, in / 32) float32 for Q4_1, None for Q8_0
    values: np.ndarray  # (out, in) int8 for Q8_0, (out, in / 2) uint8 (two 4-bit values a byte) for Q4_1
    cache: dict = field(default_factory=dict, repr=False, compare=False)  # a kernel's own layouts of it

    @property
    def shape(self) -> tuple[int, int]:
        return self.scales.shape[0], self.scales.shape[1] * BLOCK

    @classmethod
    def from_blocks(cls, kind: str, blocks) -> QuantizedWeight:
        """Return the weight held by a GGUF tensor's raw bytes, blocks (out, in / 32 * bytes a block) uint8."""
        if kind not in BLOCK_BYTES:
            raise UnsupportedError(f"quantized matmul takes {' or '.join(BLOCK_BYTES)} blocks, got {kind}")
        size = BLOCK_BYTES[kind]
        if blocks.ndim != 2 or blocks.dtype != np.uint8 or blocks.shape[1] % size:
            raise ShapeError(f"{kind} blocks must be (rows, n * {size}) uint8, got {blocks.shape} {blocks.dtype}")
        rows, n_blocks = blocks.shape[0], blocks.shape[1] // size
        by_block = np.ascontiguousarray(blocks).reshape(rows, n_blocks, size)
        scales = np.ascontiguousarray(by_block[:, :, 0:2]).view(np.float16)[..., 0].astype(np.float32)
        if kind == "Q8_0":
            values = np.ascontiguousarray(by_block[:, :, 2:]).view(np.int8).reshape(rows, -1)
            return cls(kind, scales, None, values)
        mins = np.ascontiguousarray(by_block[:, :, 2:4]).view(np.float16)[..., 0].astype(np.float32)
        values = np.ascontiguousarray(by_block[:, :, 4:]).reshape(rows, -1)
        return cls(kind, scales, mins, values)

    def rows(self, order) -> QuantizedWeight:
        """Return the weight with its output rows taken in `order` (an integer index array)."""
        mins = None if self.mins is None else np.ascontiguousarray(self.mins[order])
        return QuantizedWeight(
            self.kind, np.ascontiguousarray(self.scales[order]), mins, np.ascontiguousarray(self.values[order])
        )

    @staticmethod
    def stack(weights: list[QuantizedWeight]) -> QuantizedWeight:
        """Return the weights' rows one after the other (all of one kind and in_features)."""
        kind = weights[0].kind
        mins = None if kind == "Q8_0" else np.concatenate([w.mins for w in weights])
        return QuantizedWeight(
            kind, np.concatenate([w.scales for w in weights]), mins, np.concatenate([w.values for w in weights])
        )


def dequantize(weight: QuantizedWeight):
    """Return the float32 (out, in) weight."""
    out, n_in = weight.shape
    n_blocks = n_in // BLOCK
    if weight.kind == "Q8_0":
        values = weight.values.reshape(out, n_blocks, BLOCK).astype(np.float32)
        return (values * weight.scales[:, :, None]).reshape(out, n_in)
    packed = weight.values.reshape(out, n_blocks, BLOCK // 2)
    values = np.concatenate([packed & 15, packed >> 4], axis=-1).astype(np.float32)  # (out, blocks, 32)
    return (values * weight.scales[:, :, None] + weight.mins[:, :, None]).reshape(out, n_in)


def linear(x, weight: QuantizedWeight):
    """Return x @ W.T, x (rows, in) float32, W the dequantized weight: (rows, out)."""
    return x @ dequantize(weight).T
