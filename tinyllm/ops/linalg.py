"""Matrix product with batch broadcasting."""

from __future__ import annotations

from tinyllm.autograd.function import Function
from tinyllm.autograd.tensor import Tensor
from tinyllm.errors import ShapeError
from tinyllm.kernels import matmul as kernel_matmul
from tinyllm.ops.shape import squeeze, unsqueeze


def _swap_last(xp, a):
    axes = tuple(range(a.ndim - 2)) + (a.ndim - 1, a.ndim - 2)
    return xp.permute_dims(a, axes)


class MatMul(Function):
    """a @ b through the selected matmul kernel (BLAS unless `tinyllm.kernels.use(matmul=...)`)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return kernel_matmul(a, b)

    def backward(self, grad):
        xp = self.xp
        # broadcast batch axes are summed back by sum_to
        return kernel_matmul(grad, _swap_last(xp, self.b)), kernel_matmul(_swap_last(xp, self.a), grad)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Return a @ b: (..., n, k) @ (..., k, m) -> (..., n, m), batch axes broadcast; 1-D operands
    are treated as a row (left) or column (right) vector, as in NumPy."""
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"matmul needs tensors of at least 1 dimension, got shapes {a.shape} and {b.shape}")
    if a.ndim == 1:
        return squeeze(matmul(unsqueeze(a, 0), b), -2)
    if b.ndim == 1:
        return squeeze(matmul(a, unsqueeze(b, -1)), -1)
    if a.shape[-1] != b.shape[-2]:
        raise ShapeError(f"matmul shapes {a.shape} and {b.shape} do not fit: {a.shape[-1]} != {b.shape[-2]}")
    for x, y in zip(reversed(a.shape[:-2]), reversed(b.shape[:-2])):
        if x != y and x != 1 and y != 1:
            raise ShapeError(f"matmul batch shapes of {a.shape} and {b.shape} cannot be broadcast together")
    return MatMul.apply(a, b)
