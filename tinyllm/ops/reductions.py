"""Reductions with `axis` and `keepdims`: sum and max are primitives; mean, var and logsumexp are
written from them."""

from __future__ import annotations

from tinyllm.autograd.function import Function
from tinyllm.autograd.tensor import Tensor
from tinyllm.errors import ShapeError
from tinyllm.ops.elementwise import exp, log, mul, sub


def normalize_axis(axis, ndim: int) -> tuple:
    """Return axis (None, int or sequence) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    bound = ndim or 1
    for ax in axes:
        if not -bound <= ax < bound:
            raise ShapeError(f"axis {ax} out of range for a tensor with {ndim} dimensions")
    return tuple(sorted(ax % bound for ax in axes))


def _keepdims_shape(shape: tuple, axes: tuple) -> tuple:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Sum(Function):
    def forward(self, a, axes, keepdims):
        self.input_shape = a.shape
        self.axes = axes
        return self.xp.sum(a, axis=axes, keepdims=keepdims)

    def backward(self, grad):
        xp = self.xp
        grad = xp.reshape(grad, _keepdims_shape(self.input_shape, self.axes))
        return xp.broadcast_to(grad, self.input_shape)


class Max(Function):
    def forward(self, a, axes, keepdims):
        xp = self.xp
        self.a = a
        self.axes = axes
        self.out = xp.max(a, axis=axes, keepdims=True)
        return self.out if keepdims else xp.reshape(self.out, tuple(n for i, n in enumerate(a.shape) if i not in axes))

    def backward(self, grad):
        xp = self.xp
        grad = xp.reshape(grad, self.out.shape)
        # ties share the gradient evenly (as torch.amax)
        is_max = xp.astype(self.a == self.out, grad.dtype)
        return is_max * (grad / xp.sum(is_max, axis=self.axes, keepdims=True))


def sum(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001 - the op's name
    """Return the sum over axis (all axes when None)."""
    return Sum.apply(a, axes=normalize_axis(axis, a.ndim), keepdims=keepdims)


def max(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001 - the op's name
    """Return the maximum over axis; the gradient goes to the maximal elements."""
    if a.numel() == 0:
        raise ShapeError(f"max() of an empty tensor of shape {a.shape}")
    return Max.apply(a, axes=normalize_axis(axis, a.ndim), keepdims=keepdims)


def _count(a: Tensor, axis) -> int:
    n = 1
    for ax in normalize_axis(axis, a.ndim):
        n *= a.shape[ax]
    return n


def mean(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """Return the mean over axis."""
    return mul(sum(a, axis, keepdims), 1.0 / _count(a, axis))


def var(a: Tensor, axis=None, keepdims: bool = False, correction: int = 0) -> Tensor:
    """Return the variance over axis (correction=1 for the unbiased estimate)."""
    centered = sub(a, mean(a, axis, keepdims=True))
    return mul(sum(mul(centered, centered), axis, keepdims), 1.0 / (_count(a, axis) - correction))


def logsumexp(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """Return log(sum(exp(a))) over axis, shifted by the (constant) maximum to stay finite."""
    shift = max(a, axis, keepdims=True).detach()
    xp = a._backend.xp
    # a row of -inf has no finite maximum to subtract: shift it by 0 and its result is -inf
    shift.array = xp.where(xp.isfinite(shift.array), shift.array, xp.zeros_like(shift.array))
    out = log(sum(exp(sub(a, shift)), axis, keepdims=True)) + shift
    if keepdims:
        return out
    return out.reshape(tuple(n for i, n in enumerate(a.shape) if i not in normalize_axis(axis, a.ndim)))


def argmax(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """Return the index of the maximum along axis (over the flattened tensor when None)."""
    xp = a._backend.xp
    data = a.array if axis is not None else xp.reshape(a.array, (-1,))
    out = xp.argmax(data, axis=axis if axis is not None else 0, keepdims=keepdims)
    return Tensor._wrap(out, a._backend, False, None)
