"""Matrix product with batch broadcasting."""

from __future__ import annotations

import math

from tinyllm.autograd.function import Function
from tinyllm.autograd.grad_mode import is_grad_enabled
from tinyllm.autograd.tensor import Tensor
from tinyllm.errors import DeviceError, ShapeError, UnsupportedError
from tinyllm.kernels import choose
from tinyllm.kernels.qmatmul_reference import QuantizedWeight
from tinyllm.ops.shape import squeeze, unsqueeze


def _swap_last(xp, a):
    axes = tuple(range(a.ndim - 2)) + (a.ndim - 1, a.ndim - 2)
    return xp.permute_dims(a, axes)


def _rows(xp, a):
    """Return a (..., k) as a 2-d (rows, k) array: a view when a is contiguous. The row count is
    spelled out: with k = 0, -1 would be ambiguous."""
    return xp.reshape(a, (math.prod(a.shape[:-1]), a.shape[-1]))


class MatMul(Function):
    """a @ b through the selected matmul kernel (BLAS unless `tinyllm.kernels.use(matmul=...)`).

    When b is one matrix shared by every batch item (a (..., n, k) @ b (k, m), the case of every
    weight), the batch is folded into rows: one large product instead of one per item, and b's
    gradient is one (k, rows) @ (rows, m) product instead of a batched product and a sum.
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        self.kernel = kernel = choose("matmul", a, b)
        if b.ndim == 2 and a.ndim > 2:
            return self.xp.reshape(kernel.matmul(_rows(self.xp, a), b), a.shape[:-1] + (b.shape[1],))
        return kernel.matmul(a, b)

    def backward(self, grad):
        xp = self.xp
        a, b, kernel = self.a, self.b, self.kernel
        grad_a = kernel.matmul(grad, _swap_last(xp, b))
        if b.ndim == 2 and a.ndim > 2:
            return grad_a, kernel.matmul(_swap_last(xp, _rows(xp, a)), _rows(xp, grad))
        # broadcast batch axes are summed back by sum_to
        return grad_a, kernel.matmul(_swap_last(xp, a), grad)


class Linear(Function):
    """x @ w.T + bias in one node: x (..., in), w (out, in), bias (out,) -> (..., out).

    Three graph nodes (transpose, matmul, add) become one, and the batch is folded into rows as
    in MatMul; the training step of the GPT preset is about a seventh faster for it. A matmul
    kernel with `linear` and `linear_backward` (matmul_panels) makes the products with the bias
    folded in: no separate pass to add the bias or to sum its gradient.
    """

    def forward(self, x, w, bias=None):
        xp = self.xp
        self.x, self.w, self.has_bias = x, w, bias is not None
        self.kernel = choose("matmul", x, w)
        if hasattr(self.kernel, "linear"):  # a kernel with the bias folded into its products
            return xp.reshape(self.kernel.linear(_rows(xp, x), w, bias), x.shape[:-1] + (w.shape[0],))
        out = self.kernel.matmul(_rows(xp, x), _swap_last(xp, w))  # (rows, out), a new array
        if bias is not None and bias.dtype == out.dtype:
            out += bias  # in place: one pass over the output instead of a second array
        elif bias is not None:
            out = out + bias  # dtypes promoted as by every other op
        return xp.reshape(out, x.shape[:-1] + (w.shape[0],))

    def backward(self, grad):
        xp = self.xp
        grad_rows = _rows(xp, grad)  # (rows, out)
        if hasattr(self.kernel, "linear_backward"):
            grad_x, grad_w, grad_b = self.kernel.linear_backward(grad_rows, _rows(xp, self.x), self.w, self.has_bias)
            grad_x = xp.reshape(grad_x, self.x.shape)
            return (grad_x, grad_w, grad_b) if self.has_bias else (grad_x, grad_w)
        grad_x = xp.reshape(self.kernel.matmul(grad_rows, self.w), self.x.shape)
        grad_w = self.kernel.matmul(_swap_last(xp, grad_rows), _rows(xp, self.x))  # (out, in)
        if not self.has_bias:
            return grad_x, grad_w
        return grad_x, grad_w, xp.sum(grad_rows, axis=0)


class QuantizedLinear(Function):
    """x @ W.T for a weight kept in GGUF's quantized blocks: inference only (no backward)."""

    def forward(self, x, weight):
        kernel = choose("qmatmul", x)
        out = kernel.linear(_rows(self.xp, x), weight)  # (rows, out)
        return self.xp.reshape(out, x.shape[:-1] + (weight.shape[0],))


def quantized_linear(x: Tensor, weight: QuantizedWeight) -> Tensor:
    """Return x @ W.T, x (..., in) float32 on the CPU, W (out, in) given by its quantized blocks
    (kernels/qmatmul_reference.py): (..., out). Nothing is differentiated."""
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ShapeError(f"quantized_linear: input of shape {x.shape} does not fit weight of shape {weight.shape}")
    if x.device != "cpu" or x.dtype != "float32":
        raise DeviceError(f"quantized_linear runs on float32 CPU tensors, got {x.dtype} on {x.device!r}")
    if x.requires_grad and is_grad_enabled():
        raise UnsupportedError("quantized_linear has no backward; run it under tinyllm.no_grad()")
    return QuantizedLinear.apply(x, weight=weight)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Return x @ weight.T + bias: x (..., in), weight (out, in), bias (out,) -> (..., out)."""
    x_shape, w_shape = x.array.shape, weight.array.shape  # read once: every layer of a model calls this
    if len(w_shape) != 2 or not x_shape or x_shape[-1] != w_shape[1]:
        raise ShapeError(f"linear: input of shape {x.shape} does not fit weight of shape {weight.shape} (out, in)")
    if bias is not None and tuple(bias.array.shape) != (w_shape[0],):
        raise ShapeError(f"linear: bias of shape {bias.shape} does not fit weight of shape {weight.shape}")
    if bias is None:
        return Linear.apply(x, weight)
    return Linear.apply(x, weight, bias)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Return a @ b: (..., n, k) @ (..., k, m) -> (..., n, m), batch axes broadcast; 1-D operands
    are treated as a row (left) or column (right) vector, as in NumPy."""
    a_shape, b_shape = a.array.shape, b.array.shape  # read once: every product of a model calls this
    if not a_shape or not b_shape:
        raise ShapeError(f"matmul needs tensors of at least 1 dimension, got shapes {a.shape} and {b.shape}")
    if len(a_shape) == 1:
        return squeeze(matmul(unsqueeze(a, 0), b), -2 if len(b_shape) > 1 else 0)
    if len(b_shape) == 1:
        return squeeze(matmul(a, unsqueeze(b, -1)), -1)
    if a_shape[-1] != b_shape[-2]:
        raise ShapeError(f"matmul shapes {a.shape} and {b.shape} do not fit: {a_shape[-1]} != {b_shape[-2]}")
    for x, y in zip(reversed(a_shape[:-2]), reversed(b_shape[:-2])):
        if x != y and x != 1 and y != 1:
            raise ShapeError(f"matmul batch shapes of {a.shape} and {b.shape} cannot be broadcast together")
    return MatMul.apply(a, b)


def mm(a: Tensor, b: Tensor) -> Tensor:
    """Return the matrix product of two 2-d tensors: (n, k) @ (k, m) -> (n, m)."""
    if a.ndim != 2 or b.ndim != 2:
        raise ShapeError(f"mm needs two 2-d tensors, got shapes {a.shape} and {b.shape}")
    return matmul(a, b)


def bmm(a: Tensor, b: Tensor) -> Tensor:
    """Return the batched matrix product of two 3-d tensors: (B, n, k) @ (B, k, m) -> (B, n, m)."""
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
        raise ShapeError(f"bmm needs two 3-d tensors of one batch size, got shapes {a.shape} and {b.shape}")
    return matmul(a, b)
