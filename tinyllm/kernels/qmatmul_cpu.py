"""x @ W.T straight from quantized blocks (Q8_0, Q4_1) in Numba, on the CPU.

Decoding one token multiplies a few rows by every weight of the model, so its time is the time to
read the weights: 540 MB of float32 for SmolLM2-135M, ~100 MB of blocks. This kernel reads the
blocks and never builds a float32 weight. Per output row and block of 32 inputs it adds
d * q_i x_i (and m * sum_i x_i for Q4_1, the block sums of x computed once per call). The sums run in 32 lanes, one per position in a block, added up once
per output: LLVM turns those loops into vector instructions, where a sum per block (a horizontal
add every 32 weights) ran 20 times slower. Output rows are split over Numba's threads in chunks.

The reference (qmatmul_reference.py) dequantizes and calls BLAS: that is faster when many rows
share each weight (a prompt's prefill), which is why only decoding steps use this kernel.
"""

from __future__ import annotations

from numba import njit, prange

from tinyllm.backend import np
from tinyllm.kernels.qmatmul_reference import BLOCK, QuantizedWeight

DEVICE, DTYPES = "cpu", ("float32",)  # what `kernels.use` may force this kernel onto


CHUNK = 64  # output rows per task of the thread pool


@njit(parallel=True, fastmath=True, cache=True)
def _q8_0(x, scales, values, out):
    rows, n_in = x.shape
    n_out, n_blocks = scales.shape
    for chunk in prange((n_out + CHUNK - 1) // CHUNK):
        lanes = np.empty(BLOCK, np.float32)  # one partial sum per position in a block
        for j in range(chunk * CHUNK, min(n_out, (chunk + 1) * CHUNK)):
            for r in range(rows):
                lanes[:] = 0.0
                for b in range(n_blocks):
                    d = scales[j, b]
                    base = b * BLOCK
                    for i in range(BLOCK):
                        lanes[i] += d * (np.float32(values[j, base + i]) * x[r, base + i])
                out[r, j] = lanes.sum()


@njit(parallel=True, fastmath=True, cache=True)
def _q4_1(x, block_sums, scales, mins, values, out):
    rows, n_in = x.shape
    n_out, n_blocks = scales.shape
    half = BLOCK // 2
    for chunk in prange((n_out + CHUNK - 1) // CHUNK):
        lanes = np.empty(BLOCK, np.float32)
        for j in range(chunk * CHUNK, min(n_out, (chunk + 1) * CHUNK)):
            for r in range(rows):
                lanes[:] = 0.0
                offset = np.float32(0.0)  # sum over blocks of m * (sum of the block's x)
                for b in range(n_blocks):
                    d = scales[j, b]
                    base = b * BLOCK
                    for i in range(half):
                        q = np.int32(values[j, b * half + i])  # int32, not Numba's int64: 1.6x faster
                        lanes[i] += d * (np.float32(q & np.int32(15)) * x[r, base + i])
                        lanes[half + i] += d * (np.float32(q >> np.int32(4)) * x[r, base + half + i])
                    offset += mins[j, b] * block_sums[r, b]
                out[r, j] = lanes.sum() + offset


def linear(x, weight: QuantizedWeight):
    """Return x @ W.T, x (rows, in) float32, W given by its blocks: (rows, out) float32."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty((x.shape[0], weight.shape[0]), dtype=np.float32)
    if weight.kind == "Q8_0":
        _q8_0(x, weight.scales, weight.values, out)
    else:
        block_sums = x.reshape(x.shape[0], -1, BLOCK).sum(axis=-1)  # (rows, in / 32)
        _q4_1(x, block_sums, weight.scales, weight.mins, weight.values, out)
    return out
