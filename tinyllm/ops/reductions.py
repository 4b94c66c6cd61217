"""Reductions over `dim` (None: every dim) with `keepdim`, as in PyTorch: sum and amax are
primitives; mean, var, std, logsumexp and norm are written from them. `max`/`min` with a dim
return `(values, indices)`; the values are picked by index, so their gradient goes to that one
element (amax/amin share it between ties instead). `cumsum` is here too.

Where PyTorch's defaults differ from NumPy's, PyTorch's hold: `var` and `std` are unbiased
(divide by n - 1), and a mean over an empty dim is NaN.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from tinyllm.autograd.function import Function
from tinyllm.autograd.tensor import Tensor
from tinyllm.errors import ArgumentError, ShapeError
from tinyllm.ops import elementwise
from tinyllm.ops.elementwise import exp, log, maximum, minimum, mul, sqrt, sub
from tinyllm.ops.signature import normalize_dim, normalize_dims, torch_signature


class ValuesIndices(NamedTuple):
    """What max, min, sort and topk along a dim return, as PyTorch's named tuples."""

    values: Tensor
    indices: Tensor


def _keepdim_shape(shape: tuple, dims: tuple) -> tuple:
    return tuple(1 if i in dims else n for i, n in enumerate(shape))


def _reduced_shape(shape: tuple, dims: tuple) -> tuple:
    return tuple(n for i, n in enumerate(shape) if i not in dims)


class Sum(Function):
    def forward(self, a, dims, keepdim):
        self.input_shape = a.shape
        self.dims = dims
        return self.xp.sum(a, axis=dims, keepdims=keepdim)

    def backward(self, grad):
        xp = self.xp
        grad = xp.reshape(grad, _keepdim_shape(self.input_shape, self.dims))
        return xp.broadcast_to(grad, self.input_shape)


class Max(Function):
    def forward(self, a, dims, keepdim):
        xp = self.xp
        self.a = a
        self.dims = dims
        self.out = xp.max(a, axis=dims, keepdims=True)
        return self.out if keepdim else xp.reshape(self.out, _reduced_shape(a.shape, dims))

    def backward(self, grad):
        xp = self.xp
        grad = xp.reshape(grad, self.out.shape)
        # ties share the gradient evenly (as torch.amax)
        is_max = xp.astype(self.a == self.out, grad.dtype)
        return is_max * (grad / xp.sum(is_max, axis=self.dims, keepdims=True))


class TakeAlongDim(Function):
    """a's elements at `indices` along dim (the others broadcast); the gradient scatter-adds back."""

    def forward(self, a, indices, dim):
        self.input_shape, self.input_dtype = a.shape, a.dtype
        self.indices, self.dim = indices, dim
        return self.xp.take_along_axis(a, indices, axis=dim)

    def backward(self, grad):
        xp = self.xp
        full = xp.zeros(self.input_shape, dtype=self.input_dtype)
        ndim = len(self.input_shape)
        index = tuple(
            self.indices
            if axis == self.dim
            else xp.reshape(xp.arange(n), tuple(n if i == axis else 1 for i in range(ndim)))
            for axis, n in enumerate(self.indices.shape)
        )
        return self.backend.scatter_add(full, index, grad), None


class CumSum(Function):
    def forward(self, a, dim):
        self.dim = dim
        return self.xp.cumulative_sum(a, axis=dim)

    def backward(self, grad):
        xp = self.xp
        return xp.flip(xp.cumulative_sum(xp.flip(grad, axis=self.dim), axis=self.dim), axis=self.dim)


@torch_signature
def sum(a: Tensor, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A001 - the op's name
    """Return the sum over dim (every dim when None)."""
    return Sum.apply(a, dims=normalize_dims(dim, a.ndim, "sum"), keepdim=keepdim)


def _check_not_empty(a: Tensor, dims: tuple, name: str) -> None:
    if any(a.shape[d] == 0 for d in dims) or (not dims and a.numel() == 0):
        raise ShapeError(f"{name}() over an empty dim of a tensor of shape {a.shape}: no element to pick")


@torch_signature
def amax(a: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Return the maximum over dim; the gradient is shared between tied maxima."""
    dims = normalize_dims(dim, a.ndim, "amax")
    _check_not_empty(a, dims, "amax")
    return Max.apply(a, dims=dims, keepdim=keepdim)


@torch_signature
def amin(a: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Return the minimum over dim; the gradient is shared between tied minima."""
    dims = normalize_dims(dim, a.ndim, "amin")
    _check_not_empty(a, dims, "amin")
    return -Max.apply(-a, dims=dims, keepdim=keepdim)


def _squeezed(values: Tensor, indices: Tensor, dim: int) -> ValuesIndices:
    shape = _reduced_shape(values.shape, (dim,))
    return ValuesIndices(values.reshape(shape), indices.reshape(shape))


def _extremum(a: Tensor, dim, keepdim: bool, other, name: str):
    if isinstance(dim, Tensor) or other is not None:  # torch.max(a, b): the element-wise maximum
        return (maximum if name == "max" else minimum)(a, other if other is not None else dim)
    if dim is None:
        if keepdim:
            raise ArgumentError(f"{name}(): keepdim needs a dim")
        return amax(a) if name == "max" else amin(a)
    dim = normalize_dim(dim, a.ndim, name)
    _check_not_empty(a, (dim,) if a.ndim else (), name)
    target = a if a.ndim else a.reshape(1)
    xp = a._backend.xp
    pick = xp.argmax if name == "max" else xp.argmin
    indices = Tensor._wrap(pick(target.array, axis=dim, keepdims=True), a._backend, False, None)
    values = TakeAlongDim.apply(target, indices, dim=dim)
    if not a.ndim:
        return ValuesIndices(values.reshape(()), indices.reshape(()))
    return ValuesIndices(values, indices) if keepdim else _squeezed(values, indices, dim)


@torch_signature
def max(a: Tensor, dim=None, keepdim: bool = False, *, other: Tensor | None = None):  # noqa: A001 - the op's name
    """Return the maximum: over everything (dim None, a 0-d tensor), or `(values, indices)` along
    an int dim, or the element-wise maximum when the second argument is a tensor (torch.max(a, b))."""
    return _extremum(a, dim, keepdim, other, "max")


@torch_signature
def min(a: Tensor, dim=None, keepdim: bool = False, *, other: Tensor | None = None):  # noqa: A001 - the op's name
    """Return the minimum, as `max` does the maximum."""
    return _extremum(a, dim, keepdim, other, "min")


def _count(a: Tensor, dims: tuple) -> int:
    return math.prod(a.shape[d] for d in dims)


@torch_signature
def mean(a: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Return the mean over dim; NaN over an empty dim, as in PyTorch."""
    dims = normalize_dims(dim, a.ndim, "mean")
    count = _count(a, dims)
    return mul(Sum.apply(a, dims=dims, keepdim=keepdim), 1.0 / count if count else math.nan)


def _correction(unbiased, correction, name: str) -> float:
    if unbiased is not None and correction is not None:
        raise ArgumentError(f"{name}(): pass unbiased or correction, not both")
    if correction is not None:
        return correction
    return 0 if unbiased is False else 1


@torch_signature
def var(a: Tensor, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction=None) -> Tensor:
    """Return the variance over dim: sum((a - mean)^2) / (n - correction), correction 1 by default
    (the unbiased estimate, as in PyTorch; unbiased=False or correction=0 divide by n)."""
    dims = normalize_dims(dim, a.ndim, "var")
    divisor = _count(a, dims) - _correction(unbiased, correction, "var")
    centered = sub(a, mean(a, dims, keepdim=True))
    return mul(
        Sum.apply(mul(centered, centered), dims=dims, keepdim=keepdim), 1.0 / divisor if divisor > 0 else math.inf
    )


@torch_signature
def std(a: Tensor, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction=None) -> Tensor:
    """Return the standard deviation over dim, sqrt(var), unbiased by default as var."""
    return sqrt(var(a, dim, unbiased, keepdim, correction=correction))


@torch_signature
def logsumexp(a: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Return log(sum(exp(a))) over dim, shifted by the (constant) maximum to stay finite."""
    dims = normalize_dims(dim, a.ndim, "logsumexp")
    shift = amax(a, dims, keepdim=True).detach()
    xp = a._backend.xp
    # a row of -inf has no finite maximum to subtract: shift it by 0 and its result is -inf
    shift.array = xp.where(xp.isfinite(shift.array), shift.array, xp.zeros_like(shift.array))
    out = log(Sum.apply(exp(sub(a, shift)), dims=dims, keepdim=True)) + shift
    return out if keepdim else out.reshape(_reduced_shape(a.shape, dims))


@torch_signature
def norm(a: Tensor, p="fro", dim=None, keepdim: bool = False) -> Tensor:
    """Return the p-norm over dim: p = 2 or "fro" (the default), 1, inf, -inf, or any other number."""
    if p in ("fro", 2, 2.0):
        return sqrt(sum(mul(a, a), dim, keepdim))
    if p in (1, 1.0):
        return sum(elementwise.abs(a), dim, keepdim)
    if p == math.inf:
        return amax(elementwise.abs(a), dim, keepdim)
    if p == -math.inf:
        return amin(elementwise.abs(a), dim, keepdim)
    if isinstance(p, (int, float)) and not isinstance(p, bool) and p != 0:
        return elementwise.pow(sum(elementwise.pow(elementwise.abs(a), p), dim, keepdim), 1.0 / p)
    raise ArgumentError(f"norm(): p must be 'fro', a nonzero number or +-inf, got {p!r}")


@torch_signature
def argmax(a: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Return the index of the maximum along dim (of the flattened tensor when None)."""
    return _arg(a, dim, keepdim, "argmax")


@torch_signature
def argmin(a: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Return the index of the minimum along dim (of the flattened tensor when None)."""
    return _arg(a, dim, keepdim, "argmin")


def _arg(a: Tensor, dim, keepdim: bool, name: str) -> Tensor:
    xp = a._backend.xp
    if dim is None:
        _check_not_empty(a, (), name)
        out = getattr(xp, name)(xp.reshape(a.array, (-1,)), axis=0)
        return Tensor._wrap(xp.reshape(out, (1,) * a.ndim) if keepdim else out, a._backend, False, None)
    dim = normalize_dim(dim, a.ndim, name)
    _check_not_empty(a, (dim,) if a.ndim else (), name)
    if not a.ndim:
        return Tensor._wrap(xp.zeros((), dtype=xp.int64), a._backend, False, None)
    return Tensor._wrap(getattr(xp, name)(a.array, axis=dim, keepdims=keepdim), a._backend, False, None)


@torch_signature
def cumsum(a: Tensor, dim: int) -> Tensor:
    """Return the running sum along dim, same shape as a."""
    if not a.ndim:
        return a.reshape(1).cumsum(0).reshape(())
    return CumSum.apply(a, dim=normalize_dim(dim, a.ndim, "cumsum"))


@torch_signature
def take_along_dim(a: Tensor, indices: Tensor, dim: int) -> Tensor:
    """Return a's elements at the integer `indices` along dim (indices broadcast against a elsewhere)."""
    return TakeAlongDim.apply(a, indices, dim=normalize_dim(dim, a.ndim, "take_along_dim"))


@torch_signature
def gather(a: Tensor, dim: int, index: Tensor) -> Tensor:
    """Return out[i][j] = a[index[i][j]][j] (for dim 0, and so on): index has a's number of dims."""
    if index.ndim != a.ndim:
        raise ShapeError(f"gather: index of shape {index.shape} needs as many dims as input {a.shape}")
    return take_along_dim(a, index, dim)
