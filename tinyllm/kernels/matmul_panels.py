"""Matrix product on Numba's threads: each thread makes one panel of the result with one
single-threaded BLAS call. The CPU matmul of a process tuned by `tune_for_training()`.

Why: NumPy's OpenBLAS keeps threads of its own, and after a product they spin, waiting for the
next one, for a long while. A Numba kernel that runs between two products (attention, on the
GPT preset's step) then found the second core taken and, in most processes, ran at one
thread's speed. With BLAS single-threaded and its products split here, one pool of threads
(Numba's) runs the whole step: on a 2-core AMD EPYC the preset's attention forward+backward
took 6.2-7.1 ms a step instead of 9.2-11.8 (benchmarks/bench_train.py --profile, four processes
and more).

How a product a @ b is split over the threads:
- a C-contiguous (activations, `x @ w.T`, `grad @ w`): the rows of a and of the result;
- a F-contiguous, a transposed C array (the weight gradient `grad.T @ x`): the rows of the
  result, which are columns of `grad`: each thread passes BLAS its columns as a matrix with
  `grad`'s row stride as the leading dimension, so nothing is copied or summed afterwards;
- a stack of matrices (..., n, k) @ (..., k, m): the matrices;
- small products (below SERIAL_WORK multiply-adds) and any other layout: one BLAS call on the
  calling thread (matmul_blas), which is what BLAS itself would do with so little work.

`linear` and `linear_backward` are a Linear layer's products with its bias folded in: each
thread writes the bias into its rows of the output and lets the GEMM add the product (beta = 1:
no second pass over the output), and the thread that makes rows j0:j1 of the weight gradient
sums the same columns of `grad` for the bias gradient.

The GEMM is the Fortran `sgemm`/`dgemm` of NumPy's own OpenBLAS when NumPy ships one (its
wheels' `scipy_openblas64_`, 64-bit integers), else of SciPy's BLAS, the one Numba's `np.dot`
calls; its address is registered under a fixed name (`add_symbol`) that the cached kernels
link against, and the integer width travels as the dtype of the `ints` workspace. On the GPT
preset's shapes NumPy's OpenBLAS 0.3.31 made the weight gradient and its bias 5-24% faster
than SciPy's 0.3.30 through `np.dot` with the inner axis split in halves (2 cores, AMD EPYC).

matmul_blas is the reference: the same products, by NumPy.
"""

from __future__ import annotations

import ctypes
import math
import os

import numba
from llvmlite import binding
from numba import njit, prange, types
from numba.extending import get_cython_function_address

from tinyllm.backend import np
from tinyllm.kernels import matmul_blas

DEVICE, DTYPES = "cpu", ("float32", "float64")  # what `kernels.use` may force this kernel onto

SERIAL_WORK = 2**18  # multiply-adds up to which one thread makes the product (OpenBLAS's own cut)
_SYMBOLS = ("tinyllm_panels_sgemm", "tinyllm_panels_dgemm")


def _find_gemm():
    """Return (sgemm address, dgemm address, integer dtype, description) of the BLAS to call."""
    try:
        from threadpoolctl import threadpool_info

        for info in threadpool_info():
            if info["user_api"] == "blas" and os.path.basename(info["filepath"]).startswith("libscipy_openblas64_"):
                library = ctypes.CDLL(info["filepath"])
                addresses = [ctypes.cast(getattr(library, f"scipy_{t}gemm_64_"), ctypes.c_void_p).value for t in "sd"]
                return (*addresses, np.int64, f"NumPy's OpenBLAS {info['version']}")
    except (ImportError, OSError, AttributeError):
        pass
    addresses = [get_cython_function_address("scipy.linalg.cython_blas", f"{t}gemm") for t in "sd"]
    return (*addresses, np.int32, "SciPy's BLAS")


_sgemm_address, _dgemm_address, _INT, BLAS = _find_gemm()
binding.add_symbol(_SYMBOLS[0], _sgemm_address)
binding.add_symbol(_SYMBOLS[1], _dgemm_address)
BLAS_INTS = np.empty(0, dtype=_INT)  # of the GEMM's integer type: callers' `ints` workspaces are made like it
_FORTRAN_GEMM = types.void(*[types.voidptr] * 13)  # every argument by reference
_sgemm = types.ExternalFunction(_SYMBOLS[0], _FORTRAN_GEMM)
_dgemm = types.ExternalFunction(_SYMBOLS[1], _FORTRAN_GEMM)
_N, _T = 78, 84  # "N" and "T", BLAS's transpose flags


@njit(inline="always")
def gemm(trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc, ints):
    """c = op(a) @ op(b) + beta * c for row-major matrices given by their first element (a, b, c
    arrays starting there) and leading dimensions; ints is a workspace of BLAS's integer type.

    Row-major c is column-major c.T = op(b).T @ op(a).T: the Fortran GEMM is called with the
    operands swapped. The fused attention calls it too, on blocks of rows read in place."""
    flags = np.empty(2, np.uint8)
    flags[0] = _T if trans_b else _N
    flags[1] = _T if trans_a else _N
    ints[0], ints[1], ints[2], ints[3], ints[4], ints[5] = n, m, k, ldb, lda, ldc
    scalars = np.empty(2, c.dtype)
    scalars[0], scalars[1] = 1, beta
    if c.itemsize == 4:
        _sgemm(flags[0:].ctypes, flags[1:].ctypes, ints[0:].ctypes, ints[1:].ctypes, ints[2:].ctypes,
               scalars[0:].ctypes, b.ctypes, ints[3:].ctypes, a.ctypes, ints[4:].ctypes, scalars[1:].ctypes,
               c.ctypes, ints[5:].ctypes)  # fmt: skip
    else:
        _dgemm(flags[0:].ctypes, flags[1:].ctypes, ints[0:].ctypes, ints[1:].ctypes, ints[2:].ctypes,
               scalars[0:].ctypes, b.ctypes, ints[3:].ctypes, a.ctypes, ints[4:].ctypes, scalars[1:].ctypes,
               c.ctypes, ints[5:].ctypes)  # fmt: skip


@njit(parallel=True, cache=True)
def _row_panels(a, b, trans_b, bias, has_bias, out, ints):
    """out = a @ op(b) (+ bias on every row), the rows cut into one panel per row of ints.

    a is C-contiguous (n, k); b C-contiguous, (k, m), or (m, k) with trans_b."""
    rows, inner = a.shape
    cols = out.shape[1]
    n_panels = ints.shape[0]
    step = -(-rows // n_panels)
    for p in prange(n_panels):
        start, stop = p * step, min(rows, (p + 1) * step)
        if start < stop:
            if has_bias:  # element by element: a row assignment `out[r] = bias` took a tenth of the product
                for r in range(start, stop):
                    for c in range(cols):
                        out[r, c] = bias[c]
            gemm(False, trans_b, stop - start, cols, inner, a[start], inner, b, b.shape[1],
                  1.0 if has_bias else 0.0, out[start], cols, ints[p])  # fmt: skip


@njit(parallel=True, cache=True)
def _transposed_panels(a_t, b, out, bias_grad, has_bias, ints):
    """out = a_t.T @ b (and bias_grad = a_t summed over its rows), out's rows, the columns of
    a_t, cut into one panel per row of ints. a_t (inner, n) and b (inner, m) are C-contiguous."""
    inner, rows = a_t.shape
    cols = b.shape[1]
    n_panels = ints.shape[0]
    step = -(-rows // n_panels)
    for p in prange(n_panels):
        start, stop = p * step, min(rows, (p + 1) * step)
        if start < stop:
            gemm(True, False, stop - start, cols, inner, a_t[0, start:], rows, b, cols, 0.0, out[start], cols,
                  ints[p])  # fmt: skip
            if has_bias:
                total = bias_grad[start:stop]
                total[:] = 0
                for r in range(inner):  # row by row, the order of NumPy's sum over axis 0
                    total += a_t[r, start:stop]


@njit(parallel=True, cache=True)
def _stacked(a, b, out):
    """out[i] = a[i] @ b[i] for stacks of C-contiguous matrices, one BLAS call each."""
    for i in prange(a.shape[0]):
        np.dot(a[i], b[i], out[i])


def _workspace(rows: int):
    """Return the per-panel integer workspace of the GEMM calls: one panel per thread."""
    return np.empty((max(1, min(numba.get_num_threads(), rows)), 6), dtype=_INT)


def _splits(work: int, *sides: int) -> bool:
    """Return whether a product of `work` multiply-adds is split here: more than one thread, more
    work than SERIAL_WORK, and every side within the BLAS's integers (SciPy's are 32-bit)."""
    return numba.get_num_threads() > 1 and work > SERIAL_WORK and max(sides) < np.iinfo(_INT).max


def matmul(a, b):
    """Return a @ b for NumPy arrays (..., n, k) @ (..., k, m), batch axes broadcast."""
    if a.dtype != b.dtype or a.dtype not in (np.float32, np.float64) or min(a.ndim, b.ndim) < 2:
        return matmul_blas.matmul(a, b)
    n, k, m = a.shape[-2], a.shape[-1], b.shape[-1]
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    if 0 in (n, k, m) or not _splits(math.prod(batch) * n * k * m, math.prod(batch) * n, k, m):
        return matmul_blas.matmul(a, b)
    if b.ndim == 2 and (b.flags.c_contiguous or b.flags.f_contiguous):
        if a.flags.c_contiguous:  # (..., n, k) @ (k, m): all rows at once
            return _rows(a.reshape(-1, k), b, None).reshape(a.shape[:-1] + (m,))
        if a.ndim == 2 and a.flags.f_contiguous and b.flags.c_contiguous:
            return _transposed(a.T, b, with_bias=False)[0]
        return matmul_blas.matmul(a, b)
    a3 = np.ascontiguousarray(np.broadcast_to(a, batch + (n, k))).reshape(-1, n, k)
    b3 = np.ascontiguousarray(np.broadcast_to(b, batch + (k, m))).reshape(-1, k, m)
    out = np.empty((a3.shape[0], n, m), dtype=a.dtype)
    _stacked(a3, b3, out)
    return out.reshape(batch + (n, m))


def _rows(a, b, bias):
    """a @ b (+ bias) for a C-contiguous (n, k) and b C- or F-contiguous (k, m)."""
    out = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
    trans_b = not b.flags.c_contiguous
    has_bias = bias is not None
    bias = bias if has_bias else out[0]  # a typed placeholder, never read
    _row_panels(a, b.T if trans_b else b, trans_b, bias, has_bias, out, _workspace(a.shape[0]))
    return out


def _transposed(a_t, b, with_bias: bool):
    """(a_t.T @ b, a_t summed over axis 0 or None) for C-contiguous a_t (inner, n), b (inner, m)."""
    out = np.empty((a_t.shape[1], b.shape[1]), dtype=a_t.dtype)
    bias_grad = np.empty(a_t.shape[1], dtype=a_t.dtype)
    _transposed_panels(a_t, b, out, bias_grad, with_bias, _workspace(a_t.shape[1]))
    return out, (bias_grad if with_bias else None)


def _fused(rows: int, inner: int, cols: int, *arrays) -> bool:
    """Return whether the fused Linear products take a (rows, inner) @ (inner, cols) product of
    these arrays: one float dtype, C order, no empty side, and enough work to split."""
    dtype = arrays[0].dtype
    return (
        dtype in (np.float32, np.float64)
        and all(x.dtype == dtype and x.flags.c_contiguous for x in arrays)
        and 0 not in (rows, inner, cols)
        and _splits(rows * inner * cols, rows, inner, cols)
    )


def linear(x, w, bias):
    """Return x @ w.T + bias (bias may be None) for x (rows, in), w (out, in), bias (out,)."""
    rows, inner = x.shape
    if bias is None or not _fused(rows, inner, w.shape[0], x, w, bias):
        out = matmul(x, w.T)
        return out if bias is None else out + bias  # promoted as every other op
    return _rows(x, w.T, bias)


def linear_backward(grad, x, w, with_bias: bool):
    """Return (grad @ w, grad.T @ x, grad summed over rows or None) for grad (rows, out)."""
    rows, cols = grad.shape
    if not _fused(rows, cols, x.shape[1], grad, x, w):
        return matmul(grad, w), matmul(grad.T, x), (grad.sum(axis=0) if with_bias else None)
    grad_w, grad_b = _transposed(grad, x, with_bias)
    return _rows(grad, w, None), grad_w, grad_b
