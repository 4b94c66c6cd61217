"""Matrix product through the backend's BLAS (`xp.matmul`: OpenBLAS, MKL, cuBLAS): the default
matmul kernel, the reference of matmul_cpu and matmul_cuda, and `batched`, which lifts their
2-d products to stacks of matrices."""

from __future__ import annotations

from tinyllm.backend import backend_of, np


def matmul(a, b):
    """Return a @ b for arrays (..., n, k) @ (..., k, m), batch axes broadcast."""
    return backend_of(a).xp.matmul(a, b)


def batched(matmul_2d, a, b):
    """Return a @ b for (..., n, k) @ (..., k, m) from a 2-d product `matmul_2d(a2, b2)`."""
    xp = backend_of(a).xp
    if b.ndim == 2:  # (..., n, k) @ (k, m): one product over all leading rows
        c = matmul_2d(xp.reshape(a, (-1, a.shape[-1])), b)
        return xp.reshape(c, a.shape[:-1] + (b.shape[1],))
    batch = tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    a_rows = xp.reshape(xp.broadcast_to(a, batch + a.shape[-2:]), (-1,) + a.shape[-2:])
    b_rows = xp.reshape(xp.broadcast_to(b, batch + b.shape[-2:]), (-1,) + b.shape[-2:])
    c = xp.stack([matmul_2d(a_rows[i], b_rows[i]) for i in range(a_rows.shape[0])])
    return xp.reshape(c, batch + c.shape[-2:])
