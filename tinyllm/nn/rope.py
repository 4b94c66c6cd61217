"""Rotary position embeddings (RoPE, Su et al. 2021), as Llama uses them.

RoPE encodes position by rotating each query and key: the head vector is cut into D/2 pairs and
pair i at position p is rotated by the angle p * base^(-2i/D). The dot product of a query at p
and a key at s then depends on p - s only, so attention sees relative positions.

Which coordinates form a pair is a convention, and weights must match it:
- "half" (this module, as transformers does): pair i is (x[i], x[i + D/2]);
- "adjacent" (Meta's original code and raw GGUF files): pair i is (x[2i], x[2i + 1]).
The two are the same model up to a permutation of each head's rows of W_q and W_k, which
`tinyllm.models.llama` undoes when it reads a GGUF file (`unpermute_rotary_rows`), so that
this module only implements the "half" layout.
"""

# ruff: noqa: N806 - B, T: the field's names for tensor sizes

from __future__ import annotations

from tinyllm.autograd.function import Function
from tinyllm.autograd.tensor import Tensor
from tinyllm.backend import np
from tinyllm.errors import ShapeError
from tinyllm.nn.module import Module


class Rotate(Function):
    """Rotate the pairs (x[i], x[i + D/2]) of the last axis by angles whose cos and sin are given."""

    def forward(self, x, cos, sin):
        # x (..., T, D); cos, sin (T, D/2)
        xp = self.xp
        half = x.shape[-1] // 2
        x1, x2 = x[..., :half], x[..., half:]  # each (..., T, D/2)
        self.cos, self.sin = cos, sin
        return xp.concat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)  # (..., T, D)

    def backward(self, grad):
        # a rotation's transpose is the rotation by the opposite angle
        xp = self.xp
        half = grad.shape[-1] // 2
        g1, g2 = grad[..., :half], grad[..., half:]  # each (..., T, D/2)
        cos, sin = self.cos, self.sin
        return xp.concat([g1 * cos + g2 * sin, g2 * cos - g1 * sin], axis=-1), None, None


def rotary_tables(head_dim: int, max_positions: int, base: float = 10000.0):
    """Return (cos, sin), NumPy float32 arrays (max_positions, head_dim / 2) of the RoPE angles
    p * base^(-2i / head_dim), computed in float64."""
    if head_dim % 2:
        raise ShapeError(f"RoPE needs an even head size, got {head_dim}")
    inverse_frequency = base ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)  # (D/2,)
    angles = np.arange(max_positions, dtype=np.float64)[:, None] * inverse_frequency[None, :]  # (P, D/2)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Return x (..., T, D) with its pairs (i, i + D/2) rotated by the angles of cos, sin (T, D/2)."""
    if x.shape[-1] % 2 or cos.shape != (x.shape[-2], x.shape[-1] // 2) or sin.shape != cos.shape:
        raise ShapeError(f"RoPE: x of shape {x.shape} needs cos and sin of shape (T, D/2), got {cos.shape}")
    return Rotate.apply(x, cos, sin)


class RotaryEmbedding(Module):
    """Holds the cos/sin tables of max_positions positions; rotates queries or keys by position."""

    def __init__(self, head_dim: int, max_positions: int, base: float = 10000.0) -> None:
        super().__init__()
        self.head_dim, self.max_positions, self.base = head_dim, max_positions, base
        self.cos, self.sin = rotary_tables(head_dim, max_positions, base)  # NumPy (P, D/2), constants
        self._on_device: dict[str, tuple[Tensor, Tensor]] = {}  # device -> the tables there

    def tables(self, start: int, length: int, device: str = "cpu") -> tuple[Tensor, Tensor]:
        """Return (cos, sin), each (length, D/2), for positions start .. start + length - 1."""
        if start + length > self.max_positions:
            raise ShapeError(f"RoPE tables hold {self.max_positions} positions, asked for up to {start + length}")
        if device not in self._on_device:
            self._on_device[device] = (Tensor(self.cos, device=device), Tensor(self.sin, device=device))
        cos, sin = self._on_device[device]
        backend = cos._backend
        cos = Tensor._wrap(cos.array[start : start + length, ...], backend, False, None)  # (T, D/2)
        sin = Tensor._wrap(sin.array[start : start + length, ...], backend, False, None)  # (T, D/2)
        return cos, sin

    def forward(self, x: Tensor, start: int = 0, positions=None) -> Tensor:
        """Return x (B, H, T, D) rotated as positions start .. start + T - 1, or, given host int
        positions (B, T), row b's token t rotated as position positions[b, t]."""
        if positions is None:
            cos, sin = self.tables(start, x.shape[-2], x.device)
            return apply_rotary(x, cos, sin)
        B, T = positions.shape
        if positions.shape != (x.shape[0], x.shape[-2]):
            raise ShapeError(f"RoPE: x of shape {x.shape} needs positions of shape (B, T), got {positions.shape}")
        cos, sin = self.tables(0, int(positions.max()) + 1, x.device)  # each (P, D/2)
        xp, flat = cos._backend.xp, cos._backend.from_host(positions.reshape(-1))  # (B*T,)
        half = self.head_dim // 2
        rows_cos = xp.reshape(xp.take(cos.array, flat, axis=0), (B, 1, T, half))  # (B, 1, T, D/2)
        rows_sin = xp.reshape(xp.take(sin.array, flat, axis=0), (B, 1, T, half))  # (B, 1, T, D/2)
        backend = cos._backend
        rows_cos = Tensor._wrap(rows_cos, backend, False, None)
        rows_sin = Tensor._wrap(rows_sin, backend, False, None)
        return Rotate.apply(x, rows_cos, rows_sin)  # (B, H, T, D)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, max_positions={self.max_positions}, base={self.base}"
