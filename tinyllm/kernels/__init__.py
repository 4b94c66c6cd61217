"""Kernels: the array-level implementations behind attention and matmul, selectable by name.

Kernels sit between the backend and autograd: they take and return raw arrays (never Tensors).
Each kernel comes in a pair, a plain array-level reference and a compiled version:

| op        | reference                           | CPU (Numba)      | GPU (numba.cuda)  |
|-----------|-------------------------------------|------------------|-------------------|
| attention | attention_reference (any backend)   | attention_cpu    | attention_cuda    |
| matmul    | `xp.matmul` (BLAS, any backend)     | matmul_cpu       | matmul_cuda       |

Which one runs is chosen per call by `registry` ("auto": the fastest that supports the arrays)
and can be forced with `tinyllm.kernels.use(attention="reference", matmul="numba")`, globally or
as a context manager. numba.cuda is imported only when a CUDA kernel is used.
"""

from tinyllm.kernels.registry import (
    ATTENTION_KERNELS,
    MATMUL_KERNELS,
    attention_kernel,
    matmul,
    selected,
    use,
)

__all__ = ["ATTENTION_KERNELS", "MATMUL_KERNELS", "attention_kernel", "matmul", "selected", "use"]
