"""In-place ops: `add_ sub_ mul_ div_ clamp_ masked_fill_ fill_ zero_ copy_ normal_ uniform_`,
the `+= -= *= /=` operators and slice assignment `x[idx] = value`, with PyTorch's rules.

Each is its out-of-place op, its result written into the tensor's storage (so views and `.data`
of the tensor see it) and cast to the tensor's dtype:
- outside a graph (no_grad, or nothing requires grad) it is a plain write;
- in a graph the tensor takes the op's node as its grad_fn; the node reads a copy of the old
  values, so the gradient is exact;
- on a leaf that requires grad it is a GraphError outside no_grad (an optimizer step belongs in
  no_grad), and so is a differentiable view of one; a write that puts a view of another tensor
  into the graph is an UnsupportedError (write into the base tensor with slice assignment);
- every write advances the version counter (autograd/function.py): backward through a node that
  needs the old values raises GraphError instead of giving a wrong gradient.
"""

from __future__ import annotations

from tinyllm.autograd.function import Function, record_write
from tinyllm.autograd.grad_mode import _GradMode
from tinyllm.autograd.tensor import Tensor
from tinyllm.backend import FLOAT_DTYPES, RANDOM
from tinyllm.errors import DTypeError, GraphError, ShapeError, UnsupportedError
from tinyllm.ops.convert import astype, raw_index, scalar_like
from tinyllm.ops.elementwise import add, clip, div, masked_fill, mul, sub
from tinyllm.ops.signature import torch_signature


class SetItem(Function):
    """a with value written at index; the gradient of the overwritten elements goes nowhere."""

    def forward(self, a, value, index):
        self.index = index
        out = self.xp.asarray(a, copy=True)
        out[index] = value
        return out

    def backward(self, grad):
        grad_a = self.xp.asarray(grad, copy=True)
        grad_a[self.index] = 0
        return grad_a, grad[self.index]  # sum_to reduces the second to value's shape


def _check_target(t: Tensor, result_requires_grad: bool) -> None:
    if not _GradMode.enabled:
        return
    if t.requires_grad and t.grad_fn is None:
        raise GraphError(
            f"a leaf tensor of shape {t.shape} that requires grad cannot be changed in place outside "
            "no_grad(); update parameters inside `with tl.no_grad():`, or change a clone()"
        )
    base = t._base
    if base is not None and (t.requires_grad or result_requires_grad):
        if base.requires_grad and base.grad_fn is None:
            raise GraphError("a view of a leaf tensor that requires grad cannot be changed in place outside no_grad()")
        raise UnsupportedError(
            "an in-place change of a view that puts it into the autograd graph; write into the "
            "base tensor instead (`base[index] = value`) or change a clone()"
        )


def _store(t: Tensor, array, index=Ellipsis) -> None:
    """Write array into t's storage at index and count the write."""
    try:
        t.array[index] = array
    except ValueError as error:  # a broadcast (expanded) view is read-only
        raise UnsupportedError(
            f"cannot write in place into a tensor of shape {t.shape} whose elements share memory "
            f"(an expand() result?); clone() it first ({error})"
        ) from None
    record_write(t)


def _cast_like(result: Tensor, t: Tensor) -> Tensor:
    if result.shape != t.shape:
        raise ShapeError(f"an in-place result of shape {result.shape} does not fit the tensor's shape {t.shape}")
    if result.dtype == t.dtype:
        return result
    if result.dtype in FLOAT_DTYPES and t.dtype not in FLOAT_DTYPES:
        raise DTypeError(f"an in-place result of dtype {result.dtype} cannot be stored in a {t.dtype} tensor")
    return astype(result, t.dtype)


def modify(t: Tensor, op, *operands, **kwargs) -> Tensor:
    """Return t, changed in place to op(t, *operands, **kwargs) (see the module docstring)."""
    needs_graph = _GradMode.enabled and (
        t.requires_grad or any(isinstance(o, Tensor) and o.requires_grad for o in operands)
    )
    _check_target(t, needs_graph)
    if not needs_graph:
        result = _cast_like(op(t, *operands, **kwargs), t)
        _store(t, result.array)
        return t
    # the node reads a copy of the old values: the write below must not change what backward sees
    old = Tensor._wrap(t._backend.xp.asarray(t.array, copy=True), t._backend, t.requires_grad, t.grad_fn)
    operands = tuple(old if o is t else o for o in operands)
    result = _cast_like(op(old, *operands, **kwargs), t)
    _store(t, result.array)
    t.grad_fn, t.requires_grad = result.grad_fn, True
    return t


def setitem(t: Tensor, index, value) -> None:
    """Write value (a tensor or number, broadcast to t[index], cast to t's dtype as in PyTorch)
    into t at index."""
    value = astype(scalar_like(value, t), t.dtype)
    key = raw_index(index, t._backend)
    if _GradMode.enabled and (t.requires_grad or value.requires_grad):
        modify(t, lambda old, v: SetItem.apply(old, v, index=key), value)
        return
    _check_target(t, False)
    _store(t, value.array, key)


def _alpha_scaled(other, alpha):
    return other if alpha == 1 else mul(other, alpha)


@torch_signature
def add_(t: Tensor, other, *, alpha=1) -> Tensor:
    """Return t after t += alpha * other, in place."""
    return modify(t, add, _alpha_scaled(other, alpha))


@torch_signature
def sub_(t: Tensor, other, *, alpha=1) -> Tensor:
    """Return t after t -= alpha * other, in place."""
    return modify(t, sub, _alpha_scaled(other, alpha))


def mul_(t: Tensor, other) -> Tensor:
    """Return t after t *= other, in place."""
    return modify(t, mul, other)


def div_(t: Tensor, other) -> Tensor:
    """Return t after t /= other, in place (a float tensor: integer division is not in place)."""
    return modify(t, div, other)


@torch_signature
def clip_(t: Tensor, min=None, max=None) -> Tensor:  # noqa: A002 - PyTorch's names
    """Return t clamped to [min, max], in place."""
    return modify(t, clip, min, max)


clamp_ = clip_


def masked_fill_(t: Tensor, mask: Tensor, value) -> Tensor:
    """Return t with value wherever mask is True, in place."""
    return modify(t, masked_fill, mask, value)


def fill_(t: Tensor, value) -> Tensor:
    """Return t with every element set to value (a number or a 0-d tensor), in place."""
    setitem(t, Ellipsis, value)
    return t


def zero_(t: Tensor) -> Tensor:
    """Return t with every element set to 0, in place."""
    return fill_(t, 0)


def copy_(t: Tensor, src: Tensor) -> Tensor:
    """Return t holding src's values (broadcast to t's shape, cast to its dtype), in place."""
    if isinstance(src, Tensor) and src._backend is not t._backend:
        from tinyllm.ops.convert import to_device

        src = to_device(src, t.device)
    setitem(t, Ellipsis, src)
    return t


def _random_fill(t: Tensor, host) -> Tensor:
    if t.dtype not in FLOAT_DTYPES:
        raise DTypeError(f"random fill of a {t.dtype} tensor; it needs a float tensor")
    return fill_(t, Tensor._wrap(t._backend.from_host(host.astype(t.dtype)), t._backend, False, None))


@torch_signature
def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Return t filled with samples of N(mean, std^2) from the seeded generator, in place."""
    return _random_fill(t, RANDOM.normal(t.shape, "float64") * std + mean)


@torch_signature
def uniform_(t: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Return t filled with samples uniform on [a, b) from the seeded generator, in place."""
    return _random_fill(t, RANDOM.uniform(t.shape, "float64") * (b - a) + a)
