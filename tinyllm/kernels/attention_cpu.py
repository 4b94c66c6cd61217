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
- the products of blocks (64 x D by D x 64) are `np.dot` calls, which Numba sends to BLAS; BLAS
  runs single-threaded inside the kernel (`_blas_single_thread`) since Numba's threads already
  split the work over (batch*head, query block);
- q, k, v are viewed as blocks (BH, n_blocks, block, D) so that every operand is a C-contiguous
  (or transposed, Fortran-contiguous) matrix, which BLAS takes without a copy; they are copied,
  in one pass over Numba's threads, when they are strided views (a Transformer's q, k, v cut
  from one projection) or T is not a multiple of the block (padded with zeros; padded keys are
  masked);
- the output is written in the memory order (B, T, H, D), so that putting the heads back side by
  side is a view (on the GPT preset's step that copy took 0.2 ms), and backward reads it there;
- backward reuses the forward's blocks of q, k, v, and each head's task
  computes its rowsum(dO * O) and zeroes and scales its dq itself: on the GPT preset's step
  (T = 64) the attention forward+backward of one layer took 1.3-1.8 ms instead of 1.9-2.8 ms
  when backward re-blocked its inputs and did that work in NumPy;
- this Numba has no SVML, so `np.exp` in a loop is a scalar libm call: `vector_exp.exp_rows` is a
  polynomial exp (range reduction by ln 2, degree-11 Taylor, 2^k written as exponent bits) whose
  loops LLVM vectorizes, accurate to ~1e-15 relative, which float64 needs.
"""

from __future__ import annotations

import contextlib
import math

from numba import njit, prange

from tinyllm.backend import np
from tinyllm.kernels import runtime
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
    """Scale the raw scores s = q_blk @ k_blk^T, add the bias, set -inf where a key is masked
    (causal, or padding past t_k). Rows past t_q (padding) get no bias."""
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


@njit(parallel=True, cache=True, fastmath=_FAST)
def _forward(q, k, v, t_q, t_k, scale, bias, has_bias, causal, n_head, consts, int_like, out, lse):
    """out (B, H, Tq, D), of any strides, and lse (BH, nQ * bq) from blocked q (BH, nQ, bq, D),
    k, v (BH, nK, bk, D)."""
    n_bh, n_q_blocks, block_q, depth = q.shape
    block_k = k.shape[2]
    dtype = q.dtype
    for task in prange(n_bh * n_q_blocks):
        bh, qb = task // n_q_blocks, task % n_q_blocks
        i0 = qb * block_q
        b, h = bh // n_head, bh % n_head
        q_blk = q[bh, qb]
        s = np.empty((block_q, block_k), dtype=dtype)
        pv = np.empty((block_q, depth), dtype=dtype)
        acc = np.zeros((block_q, depth), dtype=dtype)
        row_max = np.full(block_q, -np.inf, dtype=dtype)
        row_sum = np.zeros(block_q, dtype=dtype)
        new_max = np.empty(block_q, dtype=dtype)
        shift = np.empty(block_q, dtype=dtype)
        powers = np.empty(block_k, dtype=dtype)
        bits = powers.view(int_like.dtype)
        key_end = min(t_k, i0 + block_q) if causal else t_k
        for kb in range((key_end + block_k - 1) // block_k):
            j0 = kb * block_k
            np.dot(q_blk, k[bh, kb].T, s)
            _mask_scores(s, scale, bias, has_bias, b, h, i0, j0, t_q, t_k, causal)
            _running_max(s, row_max, new_max, shift)
            exp_rows(s, shift, consts, bits, powers)
            np.dot(s, v[bh, kb], pv)
            for r in range(block_q):
                old, new = row_max[r], new_max[r]
                if new == -np.inf:  # nothing allowed in this row yet
                    continue
                correction = math.exp(old - new)  # 0 when old is -inf
                total = row_sum[r] * correction
                for j in range(block_k):
                    total += s[r, j]
                row_sum[r] = total
                row_max[r] = new
                for d in range(depth):
                    acc[r, d] = acc[r, d] * correction + pv[r, d]
        for r in range(block_q):
            real = i0 + r < t_q  # padded rows get an lse, no output
            if row_sum[r] > 0:
                inverse = consts[ONE] / row_sum[r]
                if real:
                    for d in range(depth):
                        out[b, h, i0 + r, d] = acc[r, d] * inverse
                lse[bh, i0 + r] = row_max[r] + math.log(row_sum[r])
            else:
                if real:
                    for d in range(depth):
                        out[b, h, i0 + r, d] = consts[ZERO]
                lse[bh, i0 + r] = np.inf


@njit(parallel=True, cache=True, fastmath=_FAST)
def _backward(
    q, k, v, out, grad_out, lse, t_q, t_k, scale, bias, has_bias, causal, n_head, consts, int_like, dq, dk, dv
):
    """dq, dk, dv (blocked like q, k, v, written whole) from the blocked inputs and output
    gradient, the output (B, H, Tq, D) of any strides and lse."""
    n_bh, n_q_blocks, block_q, depth = q.shape
    n_k_blocks, block_k = k.shape[1], k.shape[2]
    dtype = q.dtype
    key_end = min(t_k, t_q) if causal else t_k  # causal: keys past the last query get no gradient
    for bh in prange(n_bh):
        b, h = bh // n_head, bh % n_head
        # delta = rowsum(dO * O), 0 on padded rows (their dO is 0); each task owns its head's rows
        delta = np.zeros(n_q_blocks * block_q, dtype=dtype)
        for i in range(t_q):
            qb, r = i // block_q, i % block_q
            total = consts[ZERO]
            for d in range(depth):
                total += grad_out[bh, qb, r, d] * out[b, h, i, d]
            delta[i] = total
        dq[bh] = consts[ZERO]
        p = np.empty((block_q, block_k), dtype=dtype)
        grad_s = np.empty((block_q, block_k), dtype=dtype)
        tmp_q = np.empty((block_q, depth), dtype=dtype)
        tmp_k = np.empty((block_k, depth), dtype=dtype)
        dk_acc = np.empty((block_k, depth), dtype=dtype)
        dv_acc = np.empty((block_k, depth), dtype=dtype)
        shift = np.empty(block_q, dtype=dtype)
        powers = np.empty(block_k, dtype=dtype)
        bits = powers.view(int_like.dtype)
        for kb in range((key_end + block_k - 1) // block_k):
            j0 = kb * block_k
            k_blk, v_blk = k[bh, kb], v[bh, kb]
            dk_acc[:] = 0
            dv_acc[:] = 0
            for qb in range(j0 // block_q if causal else 0, n_q_blocks):
                i0 = qb * block_q
                q_blk, do_blk = q[bh, qb], grad_out[bh, qb]
                np.dot(q_blk, k_blk.T, p)
                _mask_scores(p, scale, bias, has_bias, b, h, i0, j0, t_q, t_k, causal)
                shift[:] = lse[bh, i0 : i0 + block_q]
                exp_rows(p, shift, consts, bits, powers)
                np.dot(p.T, do_blk, tmp_k)
                dv_acc += tmp_k
                np.dot(do_blk, v_blk.T, grad_s)
                for r in range(block_q):
                    row_delta = delta[i0 + r]
                    for j in range(block_k):
                        grad_s[r, j] = p[r, j] * (grad_s[r, j] - row_delta)
                np.dot(grad_s, k_blk, tmp_q)
                dq[bh, qb] += tmp_q
                np.dot(grad_s.T, q_blk, tmp_k)
                dk_acc += tmp_k
            for j in range(block_k):
                for d in range(depth):
                    dk[bh, kb, j, d] = dk_acc[j, d] * scale
                    dv[bh, kb, j, d] = dv_acc[j, d]
        for kb in range((key_end + block_k - 1) // block_k, n_k_blocks):  # keys no query sees
            dk[bh, kb] = consts[ZERO]
            dv[bh, kb] = consts[ZERO]
        dq[bh] *= scale


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
            import scipy.linalg.cython_blas  # noqa: F401  (the BLAS that Numba's np.dot calls)
            from threadpoolctl import ThreadpoolController
        except ImportError:
            return contextlib.nullcontext()
        _BLAS_CONTROLLER.append(ThreadpoolController())
    return _BLAS_CONTROLLER[0].limit(limits=1, user_api="blas")


def _block_size(t: int) -> int:
    if t <= BLOCK:
        return t
    return LONG_BLOCK if t >= LONG else BLOCK


@njit(parallel=True, cache=True)
def _copy_blocks(x, blocks):
    """blocks (B*H, n, block, D) = x (B, H, T, D) of any strides and dtype, zero past T: one task
    a head, the split of `_forward` and `_backward`, so each thread copies the heads it works on."""
    n_batch, n_head, t, depth = x.shape
    n_blocks, block = blocks.shape[1], blocks.shape[2]
    for bh in prange(n_batch * n_head):
        b, h = bh // n_head, bh % n_head
        for i in range(n_blocks * block):
            row = blocks[bh, i // block, i % block]
            if i < t:
                for d in range(depth):
                    row[d] = x[b, h, i, d]
            else:
                row[:] = 0


def _blocked(x, block: int, dtype):
    """Return x (B, H, T, D) as C-contiguous blocks (B*H, ceil(T / block), block, D): a view when
    x is C-contiguous, of dtype, and T a multiple of block, else a copy (zero-padded) made on
    Numba's threads: q, k, v cut from one projection are strided views, and the rows each thread
    reads are the rows its panel of that projection wrote, in its own cache (on the GPT preset's
    step the copies took 0.19 ms each on the calling thread)."""
    batch, n_head, t, depth = x.shape
    n_blocks = -(-t // block)
    if n_blocks * block == t and x.flags.c_contiguous and x.dtype == dtype:
        return x.reshape(batch * n_head, n_blocks, block, depth)
    blocks = np.empty((batch * n_head, n_blocks, block, depth), dtype=dtype)
    _copy_blocks(x, blocks)
    return blocks


def _unblocked(x, shape):
    """Return blocks (B*H, n, block, D) as (B, H, T, D), dropping the padding."""
    t = shape[2]
    flat = x.reshape(x.shape[0], -1, x.shape[3])
    return flat[:, :t].reshape(shape) if flat.shape[1] != t else flat.reshape(shape)


def _bias_blocks(bias, t_k: int, dtype):
    """Return the additive bias as a C-contiguous (b, h, q, Tk) array (b, h, q in {1, full}),
    or a dummy (1, 1, 1, 1) array when there is none."""
    if bias is None:
        return np.zeros((1, 1, 1, 1), dtype=dtype)
    bias4 = bias.reshape((1,) * (4 - bias.ndim) + bias.shape)
    bias4 = np.broadcast_to(bias4, bias4.shape[:3] + (t_k,))
    return np.array(bias4, dtype=dtype, order="C")


def forward(q, k, v, bias, causal: bool, scale: float):
    """Return (out (B, H, Tq, D), saved): what backward needs, the blocked inputs, the output
    (laid out in memory as (B, Tq, H, D) when blocked) and the log-sum-exp per row (B*H, padded
    Tq); see attention_reference for the semantics."""
    dtype = np.dtype(q.dtype)
    t_q, t_k = q.shape[2], k.shape[2]
    if t_q <= FEW_ROWS:  # decoding: no blocks, no BLAS (lse's layout is the blocked one's, Tq <= BLOCK)
        out = np.empty(q.shape, dtype=dtype)
        lse = np.empty((q.shape[0] * q.shape[1], t_q), dtype=dtype)
        bias_array = _bias_blocks(bias, t_k, dtype)
        # contiguous copies: a KV cache's keys are a strided view, on which the loops ran 3.5x slower
        q, k, v = (np.ascontiguousarray(x, dtype=dtype) for x in (q, k, v))
        work = q.size * t_k  # B * H * Tq * D * Tk multiply-adds for the scores, as many for P V
        kernel = _forward_rows_serial if work <= SERIAL_WORK else _forward_rows
        kernel(
            q,
            k,
            v,
            dtype.type(scale),
            bias_array,
            bias is not None,
            bool(causal),
            constants(dtype),
            int_like(dtype),
            out,
            lse,
        )
        # blocked only if backward runs: a decoding step would copy its whole KV cache for nothing
        return out, (None, (q, k, v), q.shape, k.shape, bias, causal, scale, lse, out)
    qb = _blocked(q, _block_size(t_q), dtype)
    kb = _blocked(k, _block_size(t_k), dtype)
    vb = _blocked(v, _block_size(t_k), dtype)
    batch, n_head, _, depth = q.shape
    # (B, H, Tq, D) in the memory order (B, Tq, H, D): the model's next step, heads back side by
    # side, (B, Tq, H * D), is then a view and not a copy
    out = np.empty((batch, t_q, n_head, depth), dtype=dtype).transpose(0, 2, 1, 3)
    lse = np.empty((qb.shape[0], qb.shape[1] * qb.shape[2]), dtype=dtype)
    args = (t_q, t_k, dtype.type(scale), _bias_blocks(bias, t_k, dtype), bias is not None, bool(causal), n_head)
    with _blas_single_thread():
        _forward(qb, kb, vb, *args, constants(dtype), int_like(dtype), out, lse)
    return out, ((qb, kb, vb), None, q.shape, k.shape, bias, causal, scale, lse, out)


def backward(saved, grad_out):
    """Return (dq, dk, dv) (shapes of q, k, v) from what forward saved."""
    blocks, unblocked, q_shape, k_shape, bias, causal, scale, lse, out = saved
    dtype = np.dtype(lse.dtype)
    t_q, t_k = q_shape[2], k_shape[2]
    if blocks is None:
        q, k, v = unblocked
        blocks = tuple(_blocked(x, _block_size(t), dtype) for x, t in ((q, t_q), (k, t_k), (v, t_k)))
    qb, kb, vb = blocks
    grad_out_b = _blocked(np.broadcast_to(grad_out, q_shape), _block_size(t_q), dtype)
    dq, dk, dv = np.empty_like(qb), np.empty_like(kb), np.empty_like(vb)
    args = (t_q, t_k, dtype.type(scale), _bias_blocks(bias, t_k, dtype), bias is not None, bool(causal), q_shape[1])
    with _blas_single_thread():
        _backward(qb, kb, vb, out, grad_out_b, lse, *args, constants(dtype), int_like(dtype), dq, dk, dv)
    return _unblocked(dq, q_shape), _unblocked(dk, k_shape), _unblocked(dv, k_shape)
