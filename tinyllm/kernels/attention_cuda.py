"""Fused softmax attention on the GPU in numba.cuda: the same algorithm as attention_cpu.

One CUDA thread per query row (forward, dQ) or per key row (dK, dV); a block of threads shares
tiles of keys and values (or of queries and output gradients) through shared memory.

- forward: each thread keeps its row's running max m, running sum l and output accumulator
  (online softmax) while the block walks over tiles of keys; it writes out and lse = m + log l;
- backward, in two kernels so that no two threads add into the same row (no atomics): dQ with a
  thread per query row, dK and dV with a thread per key row; both recompute p = exp(s - lse).

Semantics as in attention_reference (fully masked rows give zeros, lse = +inf). Arrays are CuPy
arrays, passed to the kernels through `__cuda_array_interface__`; under the numba.cuda simulator
(NUMBA_ENABLE_CUDASIM=1) NumPy arrays work too, which is how the tests run without a GPU.
numba.cuda is imported on the first call only, so `import tinyllm` never needs numba-cuda.
Head dimension D <= MAX_DEPTH (the per-thread row buffers have a fixed size).
"""

from __future__ import annotations

import math

from tinyllm.backend import backend_of
from tinyllm.errors import ShapeError

DEVICE, DTYPES = "cuda", ("float32", "float64")  # what `kernels.use` may force this kernel onto
MAX_DEPTH = 128
ROWS_PER_BLOCK = 32  # threads per block (capped by T for tiny inputs)
_KERNELS: dict[str, tuple] = {}
cuda = None  # numba.cuda, imported by the first _build; a module global, which the simulator swaps


def _build(dtype_name: str) -> tuple:
    """Compile (lazily, once per dtype) the forward, dQ and dK/dV kernels."""
    global cuda
    import numba
    from numba import cuda as numba_cuda

    cuda = numba_cuda

    real = numba.float32 if dtype_name == "float32" else numba.float64
    tile = 32 if dtype_name == "float32" else 16  # 2 tiles x tile x MAX_DEPTH fit in 48 KB
    minus_inf = -math.inf

    @cuda.jit(device=True)
    def biased(s, bias, has_bias, b, h, i, j):
        if has_bias:
            bb = b if bias.shape[0] > 1 else 0
            hb = h if bias.shape[1] > 1 else 0
            ib = i if bias.shape[2] > 1 else 0
            s += bias[bb, hb, ib, j]
        return s

    @cuda.jit
    def forward_kernel(q, k, v, bias, has_bias, causal, scale, n_head, out, lse):
        bh = cuda.blockIdx.y
        i = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        t_q, depth, t_k = q.shape[1], q.shape[2], k.shape[1]
        b, h = bh // n_head, bh % n_head
        k_tile = cuda.shared.array((tile, MAX_DEPTH), real)
        v_tile = cuda.shared.array((tile, MAX_DEPTH), real)
        q_row = cuda.local.array(MAX_DEPTH, real)
        acc = cuda.local.array(MAX_DEPTH, real)
        active = i < t_q
        for d in range(depth):
            q_row[d] = q[bh, i, d] * scale if active else 0
            acc[d] = 0
        row_max = real(minus_inf)
        row_sum = real(0)
        last_row = min(t_q, (cuda.blockIdx.x + 1) * cuda.blockDim.x) - 1
        key_end = min(t_k, last_row + 1) if causal else t_k
        for j0 in range(0, key_end, tile):
            for index in range(cuda.threadIdx.x, tile * depth, cuda.blockDim.x):
                jj, d = index // depth, index % depth
                if j0 + jj < t_k:
                    k_tile[jj, d] = k[bh, j0 + jj, d]
                    v_tile[jj, d] = v[bh, j0 + jj, d]
            cuda.syncthreads()
            if active:
                for jj in range(min(tile, key_end - j0)):
                    j = j0 + jj
                    if causal and j > i:
                        break
                    s = real(0)
                    for d in range(depth):
                        s += q_row[d] * k_tile[jj, d]
                    s = biased(s, bias, has_bias, b, h, i, j)
                    if s == minus_inf:
                        continue
                    if s > row_max:  # rescale what was summed under the old maximum
                        correction = math.exp(row_max - s) if row_max != minus_inf else real(0)
                        row_sum = row_sum * correction + 1
                        for d in range(depth):
                            acc[d] = acc[d] * correction + v_tile[jj, d]
                        row_max = s
                    else:
                        p = math.exp(s - row_max)
                        row_sum += p
                        for d in range(depth):
                            acc[d] += p * v_tile[jj, d]
            cuda.syncthreads()
        if active:
            inverse = real(1) / row_sum if row_sum > 0 else real(0)
            for d in range(depth):
                out[bh, i, d] = acc[d] * inverse
            lse[bh, i] = row_max + math.log(row_sum) if row_sum > 0 else math.inf

    @cuda.jit
    def grad_q_kernel(q, k, v, grad_out, lse, delta, bias, has_bias, causal, scale, n_head, dq):
        bh = cuda.blockIdx.y
        i = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        t_q, depth, t_k = q.shape[1], q.shape[2], k.shape[1]
        b, h = bh // n_head, bh % n_head
        k_tile = cuda.shared.array((tile, MAX_DEPTH), real)
        v_tile = cuda.shared.array((tile, MAX_DEPTH), real)
        q_row = cuda.local.array(MAX_DEPTH, real)
        do_row = cuda.local.array(MAX_DEPTH, real)
        acc = cuda.local.array(MAX_DEPTH, real)
        active = i < t_q
        for d in range(depth):
            q_row[d] = q[bh, i, d] * scale if active else 0
            do_row[d] = grad_out[bh, i, d] if active else 0
            acc[d] = 0
        row_lse = lse[bh, i] if active else real(0)
        row_delta = delta[bh, i] if active else real(0)
        last_row = min(t_q, (cuda.blockIdx.x + 1) * cuda.blockDim.x) - 1
        key_end = min(t_k, last_row + 1) if causal else t_k
        for j0 in range(0, key_end, tile):
            for index in range(cuda.threadIdx.x, tile * depth, cuda.blockDim.x):
                jj, d = index // depth, index % depth
                if j0 + jj < t_k:
                    k_tile[jj, d] = k[bh, j0 + jj, d]
                    v_tile[jj, d] = v[bh, j0 + jj, d]
            cuda.syncthreads()
            if active:
                for jj in range(min(tile, key_end - j0)):
                    j = j0 + jj
                    if causal and j > i:
                        break
                    s = real(0)
                    grad_p = real(0)
                    for d in range(depth):
                        s += q_row[d] * k_tile[jj, d]
                        grad_p += do_row[d] * v_tile[jj, d]
                    s = biased(s, bias, has_bias, b, h, i, j)
                    if s == minus_inf:
                        continue
                    grad_s = math.exp(s - row_lse) * (grad_p - row_delta)
                    for d in range(depth):
                        acc[d] += grad_s * k_tile[jj, d]
            cuda.syncthreads()
        if active:
            for d in range(depth):
                dq[bh, i, d] = acc[d] * scale

    @cuda.jit
    def grad_kv_kernel(q, k, v, grad_out, lse, delta, bias, has_bias, causal, scale, n_head, dk, dv):
        bh = cuda.blockIdx.y
        j = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        t_q, depth, t_k = q.shape[1], q.shape[2], k.shape[1]
        b, h = bh // n_head, bh % n_head
        q_tile = cuda.shared.array((tile, MAX_DEPTH), real)
        do_tile = cuda.shared.array((tile, MAX_DEPTH), real)
        k_row = cuda.local.array(MAX_DEPTH, real)
        v_row = cuda.local.array(MAX_DEPTH, real)
        dk_acc = cuda.local.array(MAX_DEPTH, real)
        dv_acc = cuda.local.array(MAX_DEPTH, real)
        active = j < t_k
        for d in range(depth):
            k_row[d] = k[bh, j, d] if active else 0
            v_row[d] = v[bh, j, d] if active else 0
            dk_acc[d] = 0
            dv_acc[d] = 0
        first_query = cuda.blockIdx.x * cuda.blockDim.x if causal else 0  # causal: i >= j
        for i0 in range(first_query, t_q, tile):
            for index in range(cuda.threadIdx.x, tile * depth, cuda.blockDim.x):
                ii, d = index // depth, index % depth
                if i0 + ii < t_q:
                    q_tile[ii, d] = q[bh, i0 + ii, d] * scale
                    do_tile[ii, d] = grad_out[bh, i0 + ii, d]
            cuda.syncthreads()
            if active:
                for ii in range(min(tile, t_q - i0)):
                    i = i0 + ii
                    if causal and i < j:
                        continue
                    s = real(0)
                    grad_p = real(0)
                    for d in range(depth):
                        s += q_tile[ii, d] * k_row[d]
                        grad_p += do_tile[ii, d] * v_row[d]
                    s = biased(s, bias, has_bias, b, h, i, j)
                    if s == minus_inf:
                        continue
                    p = math.exp(s - lse[bh, i])
                    grad_s = p * (grad_p - delta[bh, i])
                    for d in range(depth):
                        dv_acc[d] += p * do_tile[ii, d]
                        dk_acc[d] += grad_s * q_tile[ii, d]
            cuda.syncthreads()
        if active:
            for d in range(depth):
                dk[bh, j, d] = dk_acc[d]
                dv[bh, j, d] = dv_acc[d]

    return forward_kernel, grad_q_kernel, grad_kv_kernel


def _kernels(dtype_name: str) -> tuple:
    if dtype_name not in _KERNELS:
        _KERNELS[dtype_name] = _build(dtype_name)
    return _KERNELS[dtype_name]


def _launch(t: int, n_bh: int) -> tuple:
    threads = min(ROWS_PER_BLOCK, t)
    return ((t + threads - 1) // threads, n_bh), threads


def _prepare(q, k, v, bias):
    """Return xp, the dtype name, contiguous (B*H, T, D) views of q, k, v and the 4-d bias."""
    backend = backend_of(q)
    xp = backend.xp
    batch, n_head, t_q, depth = q.shape
    if depth > MAX_DEPTH:
        raise ShapeError(f"the CUDA attention kernel supports head dimension up to {MAX_DEPTH}, got {depth}")
    n_bh, t_k = batch * n_head, k.shape[2]
    q3 = xp.ascontiguousarray(q).reshape(n_bh, t_q, depth)
    k3 = xp.ascontiguousarray(k).reshape(n_bh, t_k, depth)
    v3 = xp.ascontiguousarray(v).reshape(n_bh, t_k, depth)
    if bias is None:
        bias4 = xp.zeros((1, 1, 1, 1), dtype=q.dtype)
    else:
        bias4 = bias.reshape((1,) * (4 - bias.ndim) + bias.shape)
        bias4 = xp.ascontiguousarray(xp.broadcast_to(bias4, bias4.shape[:3] + (t_k,)).astype(q.dtype))
    return xp, backend.dtype_name(q), q3, k3, v3, bias4


def forward(q, k, v, bias, causal: bool, scale: float):
    """Return (out (B, H, Tq, D), saved): the inputs, out and the log-sum-exp per row (B*H, Tq)
    that backward needs; see attention_reference for the semantics."""
    xp, dtype_name, q3, k3, v3, bias4 = _prepare(q, k, v, bias)
    forward_kernel, _, _ = _kernels(dtype_name)
    out = xp.empty_like(q3)
    lse = xp.empty(q3.shape[:2], dtype=q3.dtype)
    grid, threads = _launch(q3.shape[1], q3.shape[0])
    scale = q3.dtype.type(scale)
    forward_kernel[grid, threads](q3, k3, v3, bias4, bias is not None, bool(causal), scale, q.shape[1], out, lse)
    out = out.reshape(q.shape)
    return out, (q, k, v, bias, causal, scale, out, lse)


def backward(saved, grad_out):
    """Return (dq, dk, dv) (shapes of q, k, v) from the saved inputs, output and log-sum-exp."""
    q, k, v, bias, causal, scale, out, lse = saved
    xp, dtype_name, q3, k3, v3, bias4 = _prepare(q, k, v, bias)
    _, grad_q_kernel, grad_kv_kernel = _kernels(dtype_name)
    grad_out3 = xp.ascontiguousarray(grad_out.astype(q3.dtype)).reshape(q3.shape)
    delta = xp.sum(grad_out3 * out.reshape(q3.shape), axis=-1)  # (BH, Tq): rowsum(dO * O)
    dq, dk, dv = xp.empty_like(q3), xp.empty_like(k3), xp.empty_like(v3)
    scale = q3.dtype.type(scale)
    args = (q3, k3, v3, grad_out3, lse, delta, bias4, bias is not None, bool(causal), scale, q.shape[1])
    grid, threads = _launch(q3.shape[1], q3.shape[0])
    grad_q_kernel[grid, threads](*args, dq)
    grid, threads = _launch(k3.shape[1], k3.shape[0])
    grad_kv_kernel[grid, threads](*args, dk, dv)
    return dq.reshape(q.shape), dk.reshape(k.shape), dv.reshape(v.shape)
