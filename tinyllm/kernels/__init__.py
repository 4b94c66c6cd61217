"""Kernels: the array-level implementations behind attention, matmul, GELU and LayerNorm.

Kernels sit between the backend and autograd: they take and return raw arrays (never Tensors).
Each kernel family comes as a plain array-level reference and compiled versions of it:

| family    | reference                          | CPU (Numba)                 | GPU (numba.cuda)  |
|-----------|------------------------------------|-----------------------------|-------------------|
| attention | attention_reference (any backend)  | attention_cpu               | attention_cuda    |
| matmul    | matmul_blas (`xp.matmul`, BLAS)    | matmul_cpu, matmul_panels   | matmul_cuda       |
| norm_act  | norm_act_reference (any backend)   | norm_act_cpu                |                   |

The protocol, the same for every family: the modules of a family have the same functions; a
`forward`-like function returns `(out, saved)` and its `backward` takes `(saved, grad)` and
returns the input gradients, `saved` being whatever that module needs and nobody else reads. A
module may add fused forms of an op's work, which the op uses when the chosen module has them
(matmul_panels' `linear` and `linear_backward`: a Linear layer's products with the bias folded
in); the family's functions stay the contract every module keeps. An
op (in tinyllm/ops) calls `choose(family, *arrays)` once in its Function's forward and keeps the
module on the Function, so backward always runs the module that ran forward:

    class GeluErf(Function):
        def forward(self, a):
            self.kernel = kernels.choose("norm_act", a)
            out, self.saved = self.kernel.gelu_forward(a)
            return out

        def backward(self, grad):
            return self.kernel.gelu_backward(self.saved, grad)

A compiled module declares `DEVICE` and `DTYPES`, what it may be forced onto. Which one runs is
chosen per call by `registry.choose` ("auto": the fastest that supports the arrays) and can be
forced with `tinyllm.kernels.use(attention="reference", matmul="numba")`, globally or as a
context manager. numba.cuda is imported only when a CUDA kernel runs.
"""

from tinyllm.kernels.registry import FAMILIES, choose, selected, use
from tinyllm.kernels.runtime import tune_for_inference, tune_for_training

__all__ = ["FAMILIES", "choose", "selected", "tune_for_inference", "tune_for_training", "use"]
