"""Fused softmax attention on the CPU in Numba: flash-attention's algorithm, forward and backward.

The reference (attention_reference.py) materializes the (Tq, Tk) probabilities of every head.
This kernel never does. Per (batch*head, block of queries) it walks over blocks of keys and
keeps, for each query row, a running maximum m, a running sum l of exp(s - m) and an
unnormalized output accumulator (the "online softmax"): when a block raises the maximum, the old
sum and accumulator are rescaled by exp(m_old - m_new). Only the output and one log-sum-exp per
query row (lse = m + log l) are saved; backward recomputes each block of probabilities as
exp(s - lse) and forms the gradients block by block, one thread per (batch*head):

    dV += P^T dO,   dP = dO V^T,   dS = P * (dP - rowsum(dO * O)),   dQ += dS K,   dK += dS^T Q

Rows with every key masked have l = 0: their output is zero and their lse is +inf, so their
recomputed probabilities, and hence all their gradients, are zero.

How it is fast:
- the products of blocks (64 x D by D x 64) are single-threaded BLAS GEMM calls (matmul_panels'
  `gemm`, NumPy's own OpenBLAS), since Numba's threads already split the work over
  (batch*head, query block) in forward and over batch*head in backward;
- q, k, v, the output and its gradient are read where they lie: a head's (T, D) matrix is a BLAS
  operand whose leading dimension is the stride of the T axis, so q, k, v cut from one
  (B, T, 3, H, D) projection are not copied (`_readable` copies only what BLAS cannot read that
  way: a broadcast, reversed or cast array). A last block shorter than the others is a smaller
  product, not a padded one. Before, q, k, v were copied into C-contiguous blocks: on the GPT
  preset's shapes at T = 256 (B12 H4 D32, 2 AVX2 cores) forward took 7.7-9.4 ms a layer with
  the copies and 5.5-6.1 without; on MiniLM's (B32 H12 T52 D32) 4.5-7.8 and 2.6-4.6 ms;
- the GEMM adds into its output (beta = 1) where backward sums over blocks (dV, dQ, dK): no
  second pass over a temporary;
- the output is written in the memory order (B, T, H, D), so that putting the heads back side by
  side is a view (on the GPT preset's step that copy took 0.2 ms); dq, dk, dv are written in the
  memory order of q, k, v (`_empty_like`), so that their way back into the projection is a
  row-by-row copy (or a view) and not a transposing one;
- each head's backward task computes its rowsum(dO * O) and zeroes and scales its dq itself;
- this Numba has no SVML, so `np.exp` in a loop is a scalar libm call: `vector_exp.exp_rows` is a
  polynomial exp (range reduction by ln 2, a Taylor polynomial of degree 11 in float64 and 7 in
  float32, 2^k written as exponent bits) whose loops LLVM vectorizes.
"""

from __future__ import annotations

import contextlib
import math
from typing import NamedTuple

from numba import njit, prange

from tinyllm.backend import np
from tinyllm.kernels import runtime
from tinyllm.kernels.matmul_panels import BLAS_INTS as _BLAS_INTS
from tinyllm.kernels.matmul_panels import gemm as _gemm
from tinyllm.kernels.vector_exp import FASTMATH as _FAST
from tinyllm.kernels.vector_exp import ONE, ZERO, constants, exp_rows, int_like

DEVICE, DTYPES = "cpu", ("float32", "float64")  # what `kernels.use` may force this kernel onto

BLOCK = 64
# rows of a block from this length on: a product of two 128-row blocks pays its BLAS call's cost
# over 4x the work of two 64-row ones, and at these lengths there are still tasks enough for
# every thread (B8 H6 D64, causal, 2 AVX2 cores: forward+backward 15-20 % faster at T = 1024 and
# 2048; at 128-512 the difference was within the noise)
LONG, LONG_BLOCK = 1024, 128
FEW_ROWS = 16  # query rows a head up to which `forward` runs `_forward_rows` (decoding: 1, or G for GQA)


@njit(cache=True, fastmath=_FAST)
def _mask_scores(s, scale, bias, has_bias, b, h, i0, j0, t_q, t_k, causal):
    """Scale the raw scores s = q_blk @ k_blk^T (the block's rows, all its columns), add the
    bias, set -inf where a key is masked: causal, or a column past t_k (of a last, shorter key
    block: whatever the GEMM left there)."""
    n_rows, n_cols = s.shape
    for r in range(n_rows):
        for j in range(n_cols):
            s[r, j] *= scale
    if has_bias:
        bb = b if bias.shape[0] > 1 else 0
        hb = h if bias.shape[1] > 1 else 0
        n_cols_real = min(n_cols, t_k - j0)
        for r in range(min(n_rows, t_q - i0)):
            ib = i0 + r if bias.shape[2] > 1 else 0
            for j in range(n_cols_real):
                s[r, j] += bias[bb, hb, ib, j0 + j]
    for r in range(n_rows):
        first_masked = min(n_cols, t_k - j0)
        if causal:
            first_masked = min(first_masked, max(i0 + r + 1 - j0, 0))
        for j in range(first_masked, n_cols):
            s[r, j] = -np.inf


@njit(cache=True, fastmath=_FAST)
def _running_max(s, row_max, new_max, shift):
    """new_max = max(row_max, rowmax(s)); shift = new_max, or 0 where it is -inf (exp -> 0)."""
    n_rows, n_cols = s.shape
    for r in range(n_rows):
        m = row_max[r]
        for j in range(n_cols):
            m = max(m, s[r, j])
        new_max[r] = m
        shift[r] = m if m != -np.inf else 0


@njit(inline="always")
def _leading(x):
    """The leading dimension of x's (T, D) matrices for BLAS: the T axis's stride in elements
    (`_readable` made it at least D), or D when there is a single row (its stride is arbitrary)."""
    return max(x.strides[2] // x.itemsize, x.shape[3])


@njit(parallel=True, cache=True, fastmath=_FAST)
def _forward(q, k, v, block_q, block_k, scale, bias, has_bias, causal, consts, int_like, blas_ints, out, lse):
    """out (B, H, Tq, D) and lse (B*H, Tq) from q (B, H, Tq, D), k and v (B, H, Tk, D): every
    array of any strides with D contiguous (`_readable`); one task per (batch*head, query block)."""
    n_batch, n_head, t_q, depth = q.shape
    t_k = k.shape[2]
    ldq, ldk, ldv = _leading(q), _leading(k), _leading(v)
    n_q_blocks = (t_q + block_q - 1) // block_q
    dtype = q.dtype
    for task in prange(n_batch * n_head * n_q_blocks):
        bh, qb = task // n_q_blocks, task % n_q_blocks
        b, h = bh // n_head, bh % n_head
        i0 = qb * block_q
        rows = min(block_q, t_q - i0)
        ints = np.empty(6, blas_ints.dtype)
        q_blk = q[b, h, i0:]  # its first `rows` rows are the block, `ldq` elements apart
        s = np.empty((block_q, block_k), dtype=dtype)
        scores = s[:rows]
        pv = np.empty((block_q, depth), dtype=dtype)
        acc = np.zeros((block_q, depth), dtype=dtype)
        row_max = np.full(block_q, -np.inf, dtype=dtype)
        row_sum = np.zeros(block_q, dtype=dtype)
        new_max = np.empty(block_q, dtype=dtype)
        shift = np.empty(block_q, dtype=dtype)
        powers = np.empty(block_k, dtype=dtype)
        bits = powers.view(int_like.dtype)
        key_end = min(t_k, i0 + rows) if causal else t_k
        for kb in range((key_end + block_k - 1) // block_k):
            j0 = kb * block_k
            cols = min(block_k, t_k - j0)  # columns past it are masked to -inf, then exp makes them 0
            _gemm(False, True, rows, cols, depth, q_blk, ldq, k[b, h, j0:], ldk, 0.0, s, block_k, ints)
            _mask_scores(scores, scale, bias, has_bias, b, h, i0, j0, t_q, t_k, causal)
            _running_max(scores, row_max, new_max, shift)
            exp_rows(scores, shift, consts, bits, powers)
            _gemm(False, False, rows, depth, cols, s, block_k, v[b, h, j0:], ldv, 0.0, pv, depth, ints)
            for r in range(rows):
                old, new = row_max[r], new_max[r]
                if new == -np.inf:  # nothing allowed in this row yet
                    continue
                correction = math.exp(old - new)  # 0 when old is -inf
                total = row_sum[r] * correction
                for j in range(cols):
                    total += s[r, j]
                row_sum[r] = total
                row_max[r] = new
                for d in range(depth):
                    acc[r, d] = acc[r, d] * correction + pv[r, d]
        for r in range(rows):
            if row_sum[r] > 0:
                inverse = consts[ONE] / row_sum[r]
                for d in range(depth):
                    out[b, h, i0 + r, d] = acc[r, d] * inverse
                lse[bh, i0 + r] = row_max[r] + math.log(row_sum[r])
            else:
                for d in range(depth):
                    out[b, h, i0 + r, d] = consts[ZERO]
                lse[bh, i0 + r] = np.inf


@njit(parallel=True, cache=True, fastmath=_FAST)
def _backward(
    q, k, v, out, grad_out, lse, block_q, block_k, scale, bias, has_bias, causal, consts, int_like, blas_ints,
    dq, dk, dv,
):  # fmt: skip
    """dq, dk, dv (shapes of q, k, v, any strides with D contiguous, written whole) from the
    inputs, the output, its gradient and lse as `_forward` takes and makes them; one task per
    (batch*head), which owns its rows of dq, dk and dv."""
    n_batch, n_head, t_q, depth = q.shape
    t_k = k.shape[2]
    ldq, ldk, ldv = _leading(q), _leading(k), _leading(v)
    ldg, ldd = _leading(grad_out), _leading(dq)
    n_q_blocks = (t_q + block_q - 1) // block_q
    dtype = q.dtype
    key_end = min(t_k, t_q) if causal else t_k  # causal: keys past the last query get no gradient
    n_k_blocks = (key_end + block_k - 1) // block_k
    for bh in prange(n_batch * n_head):
        b, h = bh // n_head, bh % n_head
        ints = np.empty(6, blas_ints.dtype)
        delta = np.empty(t_q, dtype=dtype)  # rowsum(dO * O)
        for i in range(t_q):
            total = consts[ZERO]
            for d in range(depth):
                total += grad_out[b, h, i, d] * out[b, h, i, d]
                dq[b, h, i, d] = consts[ZERO]
            delta[i] = total
        p = np.empty((block_q, block_k), dtype=dtype)
        grad_s = np.empty((block_q, block_k), dtype=dtype)
        dk_acc = np.empty((block_k, depth), dtype=dtype)
        dv_acc = np.empty((block_k, depth), dtype=dtype)
        shift = np.empty(block_q, dtype=dtype)
        powers = np.empty(block_k, dtype=dtype)
        bits = powers.view(int_like.dtype)
        for kb in range(n_k_blocks):
            j0 = kb * block_k
            cols = min(block_k, t_k - j0)
            k_blk, v_blk = k[b, h, j0:], v[b, h, j0:]
            dk_acc[:] = 0
            dv_acc[:] = 0
            for qb in range(j0 // block_q if causal else 0, n_q_blocks):
                i0 = qb * block_q
                rows = min(block_q, t_q - i0)
                q_blk, do_blk = q[b, h, i0:], grad_out[b, h, i0:]
                _gemm(False, True, rows, cols, depth, q_blk, ldq, k_blk, ldk, 0.0, p, block_k, ints)
                probs = p[:rows]
                _mask_scores(probs, scale, bias, has_bias, b, h, i0, j0, t_q, t_k, causal)
                shift[:rows] = lse[bh, i0 : i0 + rows]
                exp_rows(probs, shift, consts, bits, powers)
                _gemm(True, False, cols, depth, rows, p, block_k, do_blk, ldg, 1.0, dv_acc, depth, ints)  # += P^T dO
                _gemm(False, True, rows, cols, depth, do_blk, ldg, v_blk, ldv, 0.0, grad_s, block_k, ints)  # dO V^T
                for r in range(rows):
                    row_delta = delta[i0 + r]
                    for j in range(cols):
                        grad_s[r, j] = p[r, j] * (grad_s[r, j] - row_delta)
                _gemm(False, False, rows, depth, cols, grad_s, block_k, k_blk, ldk, 1.0, dq[b, h, i0:], ldd, ints)
                _gemm(True, False, cols, depth, rows, grad_s, block_k, q_blk, ldq, 1.0, dk_acc, depth, ints)
            for j in range(cols):
                for d in range(depth):
                    dk[b, h, j0 + j, d] = dk_acc[j, d] * scale
                    dv[b, h, j0 + j, d] = dv_acc[j, d]
        for j in range(min(t_k, n_k_blocks * block_k), t_k):  # keys no query sees
            for d in range(depth):
                dk[b, h, j, d] = consts[ZERO]
                dv[b, h, j, d] = consts[ZERO]
        for i in range(t_q):
            for d in range(depth):
                dq[b, h, i, d] *= scale


@njit(parallel=True, cache=True, fastmath=_FAST)
def _forward_rows(q, k, v, scale, bias, has_bias, causal, consts, int_like, out, lse):
    """out (B, H, Tq, D) and lse (B*H, Tq) for few query rows: all keys of a head in one block.

    One task per (batch, head): scores by plain loops (no BLAS call, whose threads and blocking
    cost more than these products), masked, exponentiated and summed as in `_forward`.
    """
    n_batch, n_head, t_q, depth = q.shape
    t_k = k.shape[2]
    for bh in prange(n_batch * n_head):
        b, h = bh // n_head, bh % n_head
        s = np.empty((t_q, t_k), dtype=q.dtype)
        for r in range(t_q):
            for j in range(t_k):
                total = consts[ZERO]
                for d in range(depth):
                    total += q[b, h, r, d] * k[b, h, j, d]
                s[r, j] = total
        _mask_scores(s, scale, bias, has_bias, b, h, 0, 0, t_q, t_k, causal)
        row_max = np.full(t_q, -np.inf, dtype=q.dtype)
        shift = np.empty(t_q, dtype=q.dtype)
        _running_max(s, row_max, row_max, shift)
        powers = np.empty(t_k, dtype=q.dtype)
        exp_rows(s, shift, consts, powers.view(int_like.dtype), powers)
        acc = np.empty(depth, dtype=q.dtype)
        for r in range(t_q):
            acc[:] = consts[ZERO]
            row_sum = consts[ZERO]
            for j in range(t_k):
                p = s[r, j]
                row_sum += p
                for d in range(depth):
                    acc[d] += p * v[b, h, j, d]
            if row_sum > 0:
                for d in range(depth):
                    out[b, h, r, d] = acc[d] / row_sum
                lse[bh, r] = row_max[r] + math.log(row_sum)
            else:  # every key masked
                for d in range(depth):
                    out[b, h, r, d] = consts[ZERO]
                lse[bh, r] = np.inf


# The same loops on the calling thread (prange runs as range): a decoding step's few heads take
# less time than waking Numba's threads, and threads left spinning after a parallel kernel slow
# the BLAS products that follow it (float32 SmolLM2 decoding: 270 ms a token instead of 55).
_forward_rows_serial = njit(cache=True, fastmath=_FAST)(_forward_rows.py_func)
SERIAL_WORK = 2**21  # multiply-adds (B * H * Tq * Tk * D) up to which `_forward_rows_serial` runs


_BLAS_CONTROLLER = []


def _blas_single_thread():
    """Return a context in which BLAS runs on the calling thread only (Numba's threads already
    split the work; a threaded BLAS call inside each of them would oversubscribe the cores)."""
    if runtime.blas_on_numba_threads():  # tune_for_training made it single-threaded for good
        return contextlib.nullcontext()
    if not _BLAS_CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            return contextlib.nullcontext()
        _BLAS_CONTROLLER.append(ThreadpoolController())
    return _BLAS_CONTROLLER[0].limit(limits=1, user_api="blas")


def _block_size(t: int) -> int:
    if t <= BLOCK:
        return max(t, 1)
    return LONG_BLOCK if t >= LONG else BLOCK


def _readable(x, dtype):
    """Return x (B, H, T, D) if the kernels can read it in place, else a C-contiguous copy.

    In place means: of dtype, D contiguous and the T axis at a stride of at least D elements, so
    that each head's (T, D) matrix is one BLAS operand with that stride as its leading dimension.
    q, k, v cut from one projection (B, T, 3, H, D) and permuted are such views; so is the
    gradient of the output as the model's backward hands it over, and so are heads broadcast
    from fewer (their stride 0 is never a leading dimension). An array broadcast or reversed
    along T, cast, or strided along D is copied."""
    item = dtype.itemsize
    t, depth = x.shape[2], x.shape[3]
    t_stride, d_stride = x.strides[2], x.strides[3]
    rows_apart = t <= 1 or (t_stride >= depth * item and t_stride % item == 0)
    if x.dtype == dtype and (depth <= 1 or d_stride == item) and rows_apart:
        return x
    return np.array(x, dtype=dtype, order="C")


def _empty_like(x, dtype):
    """Return an empty array of x's shape (B, H, T, D), laid out in memory as (B, T, H, D) when
    x's heads lie inside its time steps (q, k, v cut from one projection) and as (B, H, T, D)
    otherwise: the gradient then goes back into the projection's layout row by row (a view
    when the model reshapes it back, no transposing copy)."""
    batch, n_head, t, depth = x.shape
    if n_head > 1 and t > 1 and x.strides[2] > x.strides[1]:
        return np.empty((batch, t, n_head, depth), dtype=dtype).transpose(0, 2, 1, 3)
    return np.empty(x.shape, dtype=dtype)


def _bias_array(bias, t_k: int, dtype):
    """Return the additive bias as a C-contiguous (b, h, q, Tk) array (b, h, q in {1, full}),
    or a dummy (1, 1, 1, 1) array when there is none."""
    if bias is None:
        return np.zeros((1, 1, 1, 1), dtype=dtype)
    bias4 = bias.reshape((1,) * (4 - bias.ndim) + bias.shape)
    bias4 = np.broadcast_to(bias4, bias4.shape[:3] + (t_k,))
    return np.array(bias4, dtype=dtype, order="C")


class Saved(NamedTuple):
    """What `forward` keeps for `backward`: the inputs as the kernels read them (views of the
    caller's arrays when `_readable`), the output, one log-sum-exp per query row (B*H, Tq), the
    mask and scale, and the block lengths of the query and key sides."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    out: np.ndarray
    lse: np.ndarray
    bias: np.ndarray | None
    causal: bool
    scale: float
    block_q: int
    block_k: int


def forward(q, k, v, bias, causal: bool, scale: float):
    """Return (out (B, H, Tq, D), Saved); see attention_reference for the semantics. The output
    is laid out in memory as (B, Tq, H, D): the model's next step, the heads back side by side,
    (B, Tq, H * D), is then a view and not a copy."""
    dtype = np.dtype(q.dtype)
    batch, n_head, t_q, depth = q.shape
    t_k = k.shape[2]
    out = np.empty((batch, t_q, n_head, depth), dtype=dtype).transpose(0, 2, 1, 3)
    lse = np.empty((batch * n_head, t_q), dtype=dtype)
    bias_array = _bias_array(bias, t_k, dtype)
    block_q, block_k = _block_size(t_q), _block_size(t_k)
    if t_q <= FEW_ROWS:  # decoding: no BLAS
        # contiguous copies (which backward, if any, reads as they are): a KV cache's keys are a
        # strided view, on which the loops ran 3.5x slower
        q, k, v = (np.ascontiguousarray(x, dtype=dtype) for x in (q, k, v))
        work = q.size * t_k  # B * H * Tq * D * Tk multiply-adds for the scores, as many for P V
        kernel = _forward_rows_serial if work <= SERIAL_WORK else _forward_rows
        kernel(q, k, v, dtype.type(scale), bias_array, bias is not None, bool(causal), constants(dtype),
               int_like(dtype), out, lse)  # fmt: skip
    else:
        q, k, v = (_readable(x, dtype) for x in (q, k, v))
        with _blas_single_thread():
            _forward(q, k, v, block_q, block_k, dtype.type(scale), bias_array, bias is not None, bool(causal),
                     constants(dtype), int_like(dtype), _BLAS_INTS, out, lse)  # fmt: skip
    return out, Saved(q, k, v, out, lse, bias, bool(causal), scale, block_q, block_k)


def backward(saved: Saved, grad_out):
    """Return (dq, dk, dv) (shapes of q, k, v) from what forward saved."""
    q, k, v = saved.q, saved.k, saved.v
    dtype = np.dtype(q.dtype)
    grad_out = _readable(np.broadcast_to(grad_out, q.shape), dtype)
    dq, dk, dv = _empty_like(q, dtype), _empty_like(k, dtype), _empty_like(v, dtype)
    bias = saved.bias
    with _blas_single_thread():
        _backward(q, k, v, saved.out, grad_out, saved.lse, saved.block_q, saved.block_k, dtype.type(saved.scale),
                  _bias_array(bias, k.shape[2], dtype), bias is not None, saved.causal, constants(dtype),
                  int_like(dtype), _BLAS_INTS, dq, dk, dv)  # fmt: skip
    return dq, dk, dv
