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

import os

import numba

# Numba's default threading layer here is OpenMP, whose idle threads spin. Beside OpenBLAS's own
# spinning threads on a 2-core machine, that made the GPT training step with the fused attention
# kernel 85 ms instead of 49 (and MiniLM's forward 227 ms instead of 199); the workqueue layer's
# threads sleep when idle. The choice must precede the first parallel kernel launch, and an
# explicit NUMBA_THREADING_LAYER from the user wins.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

from tinyllm.kernels.registry import (  # noqa: E402
    ATTENTION_KERNELS,
    MATMUL_KERNELS,
    attention_kernel,
    matmul,
    selected,
    use,
)

__all__ = ["ATTENTION_KERNELS", "MATMUL_KERNELS", "attention_kernel", "matmul", "selected", "use"]
