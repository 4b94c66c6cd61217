"""x @ W.T straight from quantized blocks (Q8_0, Q4_1) in Numba, on the CPU.

Decoding one token multiplies a few rows by every weight of the model, so its time is the time to
read the weights: 540 MB of float32 for SmolLM2-135M, ~100 MB of blocks. This kernel reads the
blocks and never builds a float32 weight.

The loops run over output rows innermost, so that LLVM turns them into vector instructions that
each handle 8 output rows: for each input i of a block, acc[j] += q[j, i] * x[i] for the TILE
rows j of a tile, then total[j] += d[j] * acc[j] once a block (and m[j] * sum(x of the block) for
Q4_1). That needs the values of a tile side by side in memory, TILE rows for one input, so the
first call on a weight copies its blocks once into that order (`tiled`, cached on the weight):
(tiles, inputs, TILE) values and (tiles, blocks, TILE) scales, rows past `out` set to zero. The
copy takes as much memory as the blocks (~100 MB for SmolLM2-135M); the row-order blocks stay for
the reference and for `rows`/`stack`.

A Q4_1 byte holds two weights, lo = q & 15 and hi = q >> 4, and Numba computes `&` and `>>` on
small integers in int64, 4 to a vector register. The kernel stays in float32 instead: with
f = float(q), hi = floor(f / 16) and lo = f - 16 hi, so lo * x_lo + hi * x_hi = f * x_lo +
hi * (x_hi - 16 x_lo); the second factor is computed once per input. That ran 3.5x faster than
the integer version; on a weight larger than the caches (49152 x 576) it read 13 GB/s of blocks,
where a float32 matrix-vector product read 15-18 GB/s. f * x_lo and 16 hi * x_lo cancel (f is up
to 255, lo up to 15), which costs about 4 of float32's 24 bits: the tests hold it to 1e-5
relative, the model's logits to 1e-2. Tiles are split over Numba's threads.

The reference (qmatmul_reference.py) dequantizes and calls BLAS: that is faster when many rows
share each weight (a prompt's prefill), which is why only decoding steps use this kernel.
"""

from __future__ import annotations

from numba import njit, prange

from tinyllm.backend import np
from tinyllm.kernels.qmatmul_reference import BLOCK, QuantizedWeight

DEVICE, DTYPES = "cpu", ("float32",)  # what `kernels.use` may force this kernel onto

TILE = 64  # output rows computed side by side: 8 vector registers of float32


def _by_tile(array):
    """(out, k) -> (tiles, k, TILE) contiguous, rows past `out` zero."""
    out, k = array.shape
    tiles = -(-out // TILE)
    padded = np.zeros((tiles * TILE, k), dtype=array.dtype)
    padded[:out] = array
    return np.ascontiguousarray(padded.reshape(tiles, TILE, k).transpose(0, 2, 1))


def tiled(weight: QuantizedWeight) -> tuple:
    """Return (values, scales, mins) of `weight` in tile order (mins None for Q8_0); computed once."""
    cached = weight.cache.get("tiled")
    if cached is None:
        mins = None if weight.mins is None else _by_tile(weight.mins)
        cached = weight.cache["tiled"] = (_by_tile(weight.values), _by_tile(weight.scales), mins)
    return cached


@njit(parallel=True, fastmath=True, cache=True)
def _q8_0(x, scales, values, out):
    rows = x.shape[0]
    tiles, n_blocks, tile = scales.shape
    n_out = out.shape[1]
    for t in prange(tiles):
        total = np.empty(tile, np.float32)
        acc = np.empty(tile, np.float32)
        for r in range(rows):
            total[:] = 0.0
            for b in range(n_blocks):
                acc[:] = 0.0
                for i in range(b * BLOCK, (b + 1) * BLOCK):
                    xi = x[r, i]
                    for j in range(tile):
                        acc[j] += np.float32(values[t, i, j]) * xi
                for j in range(tile):
                    total[j] += scales[t, b, j] * acc[j]
            for j in range(min(tile, n_out - t * tile)):
                out[r, t * tile + j] = total[j]


@njit(parallel=True, fastmath=True, cache=True)
def _q4_1(x, scales, mins, values, out):
    rows, n_in = x.shape
    tiles, n_blocks, tile = scales.shape
    n_out = out.shape[1]
    half = BLOCK // 2
    x_lo = np.empty((rows, n_in // 2), np.float32)  # x of the low nibbles: inputs 0-15 of each block
    x_mixed = np.empty((rows, n_in // 2), np.float32)  # x_hi - 16 x_lo
    block_sums = np.zeros((rows, n_blocks), np.float32)
    for r in range(rows):
        for b in range(n_blocks):
            for i in range(half):
                lo, hi = x[r, b * BLOCK + i], x[r, b * BLOCK + half + i]
                x_lo[r, b * half + i] = lo
                x_mixed[r, b * half + i] = hi - np.float32(16.0) * lo
                block_sums[r, b] += lo + hi
    for t in prange(tiles):
        total = np.empty(tile, np.float32)
        acc = np.empty(tile, np.float32)
        for r in range(rows):
            total[:] = 0.0
            for b in range(n_blocks):
                acc[:] = 0.0
                for i in range(b * half, (b + 1) * half):
                    lo, mixed = x_lo[r, i], x_mixed[r, i]
                    for j in range(tile):
                        f = np.float32(values[t, i, j])
                        acc[j] += f * lo + np.floor(f * np.float32(0.0625)) * mixed
                s = block_sums[r, b]
                for j in range(tile):
                    total[j] += scales[t, b, j] * acc[j] + mins[t, b, j] * s
            for j in range(min(tile, n_out - t * tile)):
                out[r, t * tile + j] = total[j]


def linear(x, weight: QuantizedWeight):
    """Return x @ W.T, x (rows, in) float32, W given by its blocks: (rows, out) float32."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty((x.shape[0], weight.shape[0]), dtype=np.float32)
    values, scales, mins = tiled(weight)
    if weight.kind == "Q8_0":
        _q8_0(x, scales, values, out)
    else:
        _q4_1(x, scales, mins, values, out)
    return out
