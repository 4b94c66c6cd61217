"""Matrix product on Numba's threads: each thread makes one panel of the result with one
single-threaded BLAS call. The CPU matmul of a process tuned by `tune_for_training()`.

Why: NumPy's OpenBLAS keeps threads of its own, and after a product they spin, waiting for the
next one, for a long while. A Numba kernel that runs between two products (attention, on the
GPT preset's step) then found the second core taken and, in most processes, ran at one
thread's speed. With BLAS single-threaded and its products split here, one pool of threads
(Numba's) runs the whole step: on a 2-core AMD EPYC the preset's attention forward+backward
took 6.2-7.1 ms a step instead of 9.2-11.8 (benchmarks/bench_train.py --profile, four processes
and more); the products of activations kept their speed, the weight gradients (split over the inner
axis, see below) ran ~12% slower than on OpenBLAS's threads.

How a product a @ b is split over the threads:
- a C-contiguous (activations, `x @ w.T`, `grad @ w`): the rows of a and of the result;
- a F-contiguous, a transposed C array (the weight gradient `grad.T @ x`): the inner axis, each
  thread making a partial product of all the result, summed at the end;
- a stack of matrices (..., n, k) @ (..., k, m): the matrices;
- small products (below SERIAL_WORK multiply-adds) and any other layout: one BLAS call on the
  calling thread (matmul_blas), which is what BLAS itself would do with so little work.

matmul_blas is the reference: the same products, by NumPy.
"""

from __future__ import annotations

import math

import numba
from numba import njit, prange

from tinyllm.backend import np
from tinyllm.kernels import matmul_blas

DEVICE, DTYPES = "cpu", ("float32", "float64")  # what `kernels.use` may force this kernel onto

SERIAL_WORK = 2**18  # multiply-adds up to which one thread makes the product (OpenBLAS's own cut)


@njit(parallel=True, cache=True)
def _row_panels(a, b, out, n_panels):
    """out = a @ b, the rows cut into n_panels panels, one BLAS call each."""
    rows = a.shape[0]
    step = -(-rows // n_panels)
    for p in prange(n_panels):
        start, stop = p * step, min(rows, (p + 1) * step)
        if start < stop:
            np.dot(a[start:stop], b, out[start:stop])


@njit(parallel=True, cache=True)
def _inner_panels(a_t, b, partial):
    """partial[p] = a[:, panel p] @ b[panel p] for a = a_t.T, the inner axis cut into panels."""
    n_panels, inner = partial.shape[0], a_t.shape[0]
    step = -(-inner // n_panels)
    for p in prange(n_panels):
        start, stop = p * step, min(inner, (p + 1) * step)
        if start < stop:
            np.dot(a_t[start:stop].T, b[start:stop], partial[p])
        else:
            partial[p][:] = 0


@njit(parallel=True, cache=True)
def _stacked(a, b, out):
    """out[i] = a[i] @ b[i] for stacks of C-contiguous matrices, one BLAS call each."""
    for i in prange(a.shape[0]):
        np.dot(a[i], b[i], out[i])


def matmul(a, b):
    """Return a @ b for NumPy arrays (..., n, k) @ (..., k, m), batch axes broadcast."""
    if a.dtype != b.dtype or a.dtype not in (np.float32, np.float64) or min(a.ndim, b.ndim) < 2:
        return matmul_blas.matmul(a, b)
    n, k, m = a.shape[-2], a.shape[-1], b.shape[-1]
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    threads = numba.get_num_threads()
    if threads == 1 or 0 in (n, k, m) or math.prod(batch) * n * k * m <= SERIAL_WORK:
        return matmul_blas.matmul(a, b)
    if b.ndim == 2 and (b.flags.c_contiguous or b.flags.f_contiguous):
        if a.ndim > 2 and a.flags.c_contiguous:  # (..., n, k) @ (k, m): one product over all rows
            rows = a.reshape(-1, k)
            return _rows(rows, b, threads).reshape(a.shape[:-1] + (m,))
        if a.ndim == 2 and a.flags.c_contiguous:
            return _rows(a, b, threads)
        if a.ndim == 2 and a.flags.f_contiguous and b.flags.c_contiguous:
            partial = np.empty((min(threads, k), n, m), dtype=a.dtype)
            _inner_panels(a.T, b, partial)
            return partial.sum(axis=0)
        return matmul_blas.matmul(a, b)
    a3 = np.ascontiguousarray(np.broadcast_to(a, batch + (n, k))).reshape(-1, n, k)
    b3 = np.ascontiguousarray(np.broadcast_to(b, batch + (k, m))).reshape(-1, k, m)
    out = np.empty((a3.shape[0], n, m), dtype=a.dtype)
    _stacked(a3, b3, out)
    return out.reshape(batch + (n, m))


def _rows(a, b, threads: int):
    out = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
    _row_panels(a, b, out, min(threads, a.shape[0]))
    return out
