"""Matrix product through Intel MKL's `cblas_sgemm`/`cblas_dgemm`, called with ctypes on NumPy
buffers: the same product as matmul_blas (NumPy's OpenBLAS), from another BLAS.

On the GPT preset's shapes (768-3072 rows, inner and outer sizes 128-512) MKL's GEMM runs about
1.1-1.4x OpenBLAS's GFLOP/s on this project's machines (benchmarks/bench_matmul.py measures both
side by side), and the Linear layers are about half of a training step. OpenBLAS stays the
default, as it comes with NumPy; MKL is opt-in: `pip install tinyllm[mkl]` (Intel's `mkl`
runtime wheel, which provides `libmkl_rt`), then `tinyllm.kernels.use(matmul="mkl")`.

How a NumPy array is handed to a row-major GEMM: a C-contiguous (m, k) array is itself, with its
row stride as the leading dimension; the transpose of a C-contiguous array (the `w.T` of every
Linear layer, the `x.T` of its weight gradient) is the original buffer with the `Trans` flag, so
no copy is made; anything else is copied once to C order. Products of stacks of matrices go
through `matmul_blas.batched`, one GEMM per matrix.

MKL is loaded on the first product, not on import. It runs on Intel's OpenMP runtime; its
threads are told to sleep as soon as a product ends (`kmp_set_blocktime(0)`), because spinning
OpenMP threads slow the Numba kernels that run between two products. `threadpoolctl` (and so
the benchmarks' `--threads`) sets its thread count like OpenBLAS's.

The `mkl` wheel also installs Intel's TBB, which Numba then prefers as the threading layer of
its parallel kernels. TBB is not fork-safe; `tinyllm.kernels.tune_for_training()` (called by
the trainer and the CLI) picks Numba's OpenMP layer (workqueue where Numba has no OpenMP)
instead, and NUMBA_THREADING_LAYER chooses explicitly in any program. Forced in a process
tuned for training, MKL runs its own threads beside Numba's spinning ones (one thread, if it
was loaded before the tuning, which limits every BLAS loaded by then);
`NUMBA_THREADING_LAYER=workqueue` keeps the tuning without the one pool, as the benchmarks' MKL
rows do.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys

from tinyllm.backend import np
from tinyllm.errors import UnsupportedError
from tinyllm.kernels.matmul_blas import batched

DEVICE, DTYPES = "cpu", ("float32", "float64")  # what `kernels.use` may force this kernel onto

INSTALL = "pip install 'tinyllm[mkl]' (Intel's MKL runtime), or set TINYLLM_MKL_LIBRARY to a libmkl_rt.so"
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112  # CBLAS enum values
_library = None  # the loaded libmkl_rt, with its two GEMMs typed


def library_path() -> str | None:
    """Return the path of libmkl_rt: $TINYLLM_MKL_LIBRARY, else the one the `mkl` wheel installs
    under sys.prefix/lib, else None."""
    path = os.environ.get("TINYLLM_MKL_LIBRARY")
    if path:
        return path
    found = sorted(glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*")))
    return found[0] if found else None


def available() -> bool:
    """Return whether libmkl_rt can be found (it is loaded only by the first product)."""
    return library_path() is not None


def load():
    """Load libmkl_rt now (the first product does it otherwise) and return it; threadpoolctl
    sees only loaded libraries."""
    global _library
    if _library is not None:
        return _library
    path = library_path()
    if path is None:
        raise UnsupportedError(f"the mkl matmul kernel needs Intel's MKL runtime: {INSTALL}")
    try:
        library = ctypes.CDLL(path)
    except OSError as error:
        raise UnsupportedError(f"cannot load MKL from {path}: {error}") from None
    pointer, integer = ctypes.c_void_p, ctypes.c_int
    for name, scalar in (("cblas_sgemm", ctypes.c_float), ("cblas_dgemm", ctypes.c_double)):
        gemm = getattr(library, name)
        gemm.restype = None
        # order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc
        gemm.argtypes = [integer] * 6 + [scalar, pointer, integer, pointer, integer, scalar, pointer, integer]
    try:  # the OpenMP runtime beside libmkl_rt, which MKL's threads run on
        ctypes.CDLL(os.path.join(os.path.dirname(path), "libiomp5.so")).kmp_set_blocktime(0)
    except (OSError, AttributeError):  # another threading layer: its threads do not spin
        pass
    _library = library
    return library


def _operand(x):
    """Return (buffer, trans flag, leading dimension) for a 2-d array x in a row-major GEMM."""
    if x.flags.c_contiguous:
        return x, _NO_TRANS, max(x.shape[1], 1)
    if x.flags.f_contiguous:  # x.T is C-contiguous: pass that buffer, transposed
        return x.T, _TRANS, max(x.shape[0], 1)
    x = np.ascontiguousarray(x)
    return x, _NO_TRANS, max(x.shape[1], 1)


def _matmul_2d(a, b):
    """Return a @ b for 2-d arrays (n, k) @ (k, m) of one dtype, float32 or float64."""
    n, k = a.shape
    m = b.shape[1]
    out = np.empty((n, m), dtype=a.dtype)
    if n == 0 or m == 0:
        return out
    if k == 0:
        out[...] = 0
        return out
    library = load()
    gemm = library.cblas_sgemm if a.dtype == np.float32 else library.cblas_dgemm
    a_buffer, trans_a, lda = _operand(a)
    b_buffer, trans_b, ldb = _operand(b)
    gemm(_ROW_MAJOR, trans_a, trans_b, n, m, k, 1.0, a_buffer.ctypes.data, lda,
         b_buffer.ctypes.data, ldb, 0.0, out.ctypes.data, m)  # fmt: skip
    return out


def matmul(a, b):
    """Return a @ b for NumPy arrays (..., n, k) @ (..., k, m) of one float dtype, batch axes
    broadcast."""
    dtype = np.result_type(a, b)  # NumPy's promotion, as matmul_blas does
    if dtype not in (np.float32, np.float64):
        raise UnsupportedError(
            f"the mkl matmul kernel multiplies float32 or float64 arrays, got {a.dtype} and {b.dtype}"
        )
    a, b = a.astype(dtype, copy=False), b.astype(dtype, copy=False)
    if a.ndim == 2 and b.ndim == 2:
        return _matmul_2d(a, b)
    return batched(_matmul_2d, a, b)
