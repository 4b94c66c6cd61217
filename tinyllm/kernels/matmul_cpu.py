"""Matrix product on the CPU in Numba: a register-blocked, cache-blocked, parallel kernel.

C = A @ B is computed as C = A @ (B^T)^T with B transposed once (O(k*m), small next to the
O(n*k*m) product), so that both operands of every dot product are contiguous rows:

- register block: each step computes a 4 x 3 tile of C as 12 dot products over the inner axis,
  held in 12 scalar accumulators; LLVM vectorizes the loop over the inner axis, so each
  iteration loads 3 vectors of B^T, then one of A at a time, and does 12 vector FMAs. The 12
  vector accumulators, 3 vectors of B^T and one of A are exactly AVX2's 16 registers: a 4 x 4
  tile (16 FMAs for 8 loads) needs 21, and its spills to the stack made it slower on AVX2.
  Two details decide whether the loop vectorizes at all: the accumulators start from a zero of
  the arrays' dtype (a literal 0 is float64 and would turn the float32 sums into float64), and
  the index is unsigned (a signed one makes Numba emit negative-index wraparound, which LLVM
  vectorizes as gathers instead of contiguous loads);
- cache block: the inner axis is cut into slices of INNER_BLOCK, so the 4 rows of A and 3 of B^T
  that a tile reads stay in L1 while the tile is computed, and a panel of PANEL_ROWS rows of A
  stays in L2 while the kernel sweeps across all of B^T;
- threads: Numba's prange over the row panels of A (each thread writes its own rows of C).

Rows and columns left over (n not a multiple of 4, m not of 3) are plain dot products.
BLAS (`xp.matmul`) is the reference and the default; benchmarks/bench_matmul.py compares them.
"""

from __future__ import annotations

from numba import njit, prange

from tinyllm.backend import np
from tinyllm.kernels.matmul_blas import batched

DEVICE, DTYPES = "cpu", ("float32", "float64")  # what `kernels.use` may force this kernel onto

PANEL_ROWS = 64
INNER_BLOCK = 1024  # a tile's 7 rows of 4 KB (float32) fit a 32 KB L1; 512 ran 10-30 % slower
_FAST = {"nsz", "contract", "reassoc", "arcp"}


@njit(cache=True, fastmath=_FAST)
def _tile_4x3(a, bt, c, i, j, p0, p1, zero):
    """c[i:i+4, j:j+3] += a[i:i+4, p0:p1] @ bt[j:j+3, p0:p1]^T (zero: 0 in a's dtype)."""
    c00 = c01 = c02 = c10 = c11 = c12 = c20 = c21 = c22 = c30 = c31 = c32 = zero
    for p_signed in range(p0, p1):
        p = np.uintp(p_signed)  # an unsigned index skips Numba's negative-index wraparound,
        # whose select would turn these contiguous loads into gathers
        b0, b1, b2 = bt[j, p], bt[j + 1, p], bt[j + 2, p]
        a0 = a[i, p]
        c00 += a0 * b0
        c01 += a0 * b1
        c02 += a0 * b2
        a1 = a[i + 1, p]
        c10 += a1 * b0
        c11 += a1 * b1
        c12 += a1 * b2
        a2 = a[i + 2, p]
        c20 += a2 * b0
        c21 += a2 * b1
        c22 += a2 * b2
        a3 = a[i + 3, p]
        c30 += a3 * b0
        c31 += a3 * b1
        c32 += a3 * b2
    c[i, j] += c00
    c[i, j + 1] += c01
    c[i, j + 2] += c02
    c[i + 1, j] += c10
    c[i + 1, j + 1] += c11
    c[i + 1, j + 2] += c12
    c[i + 2, j] += c20
    c[i + 2, j + 1] += c21
    c[i + 2, j + 2] += c22
    c[i + 3, j] += c30
    c[i + 3, j + 1] += c31
    c[i + 3, j + 2] += c32


@njit(cache=True, fastmath=_FAST)
def _dot(a, bt, i, j, p0, p1, zero):
    """Return a[i, p0:p1] . bt[j, p0:p1]."""
    total = zero
    for p_signed in range(p0, p1):
        p = np.uintp(p_signed)  # see _tile_4x3
        total += a[i, p] * bt[j, p]
    return total


@njit(parallel=True, cache=True, fastmath=_FAST)
def _matmul_nt(a, bt, c):
    """c = a @ bt^T for C-contiguous a (n, k), bt (m, k); c (n, m) is overwritten."""
    n, inner = a.shape
    m = bt.shape[0]
    n_panels = (n + PANEL_ROWS - 1) // PANEL_ROWS
    zero = np.zeros(1, dtype=a.dtype)[0]  # a literal 0 would be float64 and make the sums float64
    for panel in prange(n_panels):
        i_start = panel * PANEL_ROWS
        i_end = min(i_start + PANEL_ROWS, n)
        i_tiled = i_start + (i_end - i_start) // 4 * 4
        m_tiled = m // 3 * 3
        for i in range(i_start, i_end):
            for j in range(m):
                c[i, j] = zero
        for p0 in range(0, inner, INNER_BLOCK):
            p1 = min(p0 + INNER_BLOCK, inner)
            for j in range(0, m_tiled, 3):
                for i in range(i_start, i_tiled, 4):
                    _tile_4x3(a, bt, c, i, j, p0, p1, zero)
            for i in range(i_start, i_end):  # leftover columns, then leftover rows
                for j in range(m_tiled, m):
                    c[i, j] += _dot(a, bt, i, j, p0, p1, zero)
            for i in range(i_tiled, i_end):
                for j in range(m_tiled):
                    c[i, j] += _dot(a, bt, i, j, p0, p1, zero)


def _as_kernel_array(x, dtype):
    """Return x as a C-contiguous writable array (one Numba specialization per dtype)."""
    if x.dtype == dtype and x.flags.c_contiguous and x.flags.writeable:
        return x
    return np.array(x, dtype=dtype, order="C")


def matmul_2d(a, b):
    """Return a @ b for 2-d float32/float64 NumPy arrays a (n, k), b (k, m)."""
    dtype = np.result_type(a.dtype, b.dtype)
    a = _as_kernel_array(a, dtype)
    bt = _as_kernel_array(b.T, dtype)  # (m, k): rows of B^T are B's columns
    c = np.empty((a.shape[0], bt.shape[0]), dtype=dtype)
    if a.shape[1] == 0:
        c[:] = 0
    elif c.size:
        _matmul_nt(a, bt, c)
    return c


def matmul(a, b):
    """Return a @ b for (..., n, k) @ (..., k, m), batch axes broadcast, one 2-d product each."""
    return batched(matmul_2d, a, b)
