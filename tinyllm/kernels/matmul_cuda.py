"""Matrix product on the GPU in numba.cuda: the classic tiled shared-memory kernel.

Each block of TILE x TILE threads computes a TILE x TILE tile of C = A @ B. It walks along the
inner dimension in steps of TILE: every thread loads one element of A's tile and one of B's tile
into shared memory, the block synchronizes, and each thread accumulates its row-of-A-tile times
column-of-B-tile dot product; so each element of A and B is read from global memory n / TILE
times instead of n times. Out-of-range elements load as 0, so any shape works.

The reference is `xp.matmul` (cuBLAS through CuPy), which stays the default. Arrays are CuPy
arrays (or NumPy arrays under NUMBA_ENABLE_CUDASIM=1); numba.cuda is imported on first use.
"""

from __future__ import annotations

from tinyllm.backend import backend_of
from tinyllm.kernels.matmul_blas import batched

DEVICE, DTYPES = "cuda", ("float32", "float64")  # what `kernels.use` may force this kernel onto
TILE = 16
_KERNELS: dict[str, object] = {}
cuda = None  # numba.cuda, imported by the first _build; a module global, which the simulator swaps


def _build(dtype_name: str):
    """Compile (lazily, once per dtype) the tiled kernel c = a @ b for 2-d a (n, k), b (k, m)."""
    global cuda
    import numba
    from numba import cuda as numba_cuda

    cuda = numba_cuda
    real = numba.float32 if dtype_name == "float32" else numba.float64

    @cuda.jit
    def matmul_kernel(a, b, c):
        a_tile = cuda.shared.array((TILE, TILE), real)
        b_tile = cuda.shared.array((TILE, TILE), real)
        row = cuda.blockIdx.y * TILE + cuda.threadIdx.y
        col = cuda.blockIdx.x * TILE + cuda.threadIdx.x
        n, inner, m = a.shape[0], a.shape[1], b.shape[1]
        acc = real(0)
        for p0 in range(0, inner, TILE):
            a_col, b_row = p0 + cuda.threadIdx.x, p0 + cuda.threadIdx.y
            a_tile[cuda.threadIdx.y, cuda.threadIdx.x] = a[row, a_col] if row < n and a_col < inner else 0
            b_tile[cuda.threadIdx.y, cuda.threadIdx.x] = b[b_row, col] if b_row < inner and col < m else 0
            cuda.syncthreads()
            for p in range(TILE):
                acc += a_tile[cuda.threadIdx.y, p] * b_tile[p, cuda.threadIdx.x]
            cuda.syncthreads()
        if row < n and col < m:
            c[row, col] = acc

    return matmul_kernel


def matmul_2d(a, b):
    """Return a @ b for 2-d float32/float64 arrays a (n, k), b (k, m)."""
    backend = backend_of(a)
    xp, dtype_name = backend.xp, backend.dtype_name(a)
    if dtype_name not in _KERNELS:
        _KERNELS[dtype_name] = _build(dtype_name)
    c = xp.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
    grid = ((b.shape[1] + TILE - 1) // TILE, (a.shape[0] + TILE - 1) // TILE)
    _KERNELS[dtype_name][grid, (TILE, TILE)](xp.ascontiguousarray(a), xp.ascontiguousarray(b), c)
    return c


def matmul(a, b):
    """Return a @ b for (..., n, k) @ (..., k, m), batch axes broadcast, one 2-d product each."""
    return batched(matmul_2d, a, b)
