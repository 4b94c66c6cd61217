"""Element-wise ops with broadcasting: arithmetic, math functions, comparisons, where and clip.

Each backward may return a gradient of the broadcast shape; `autograd.function.sum_to` reduces it
to the input's shape, once for all ops.
"""

from __future__ import annotations

import numbers

from tinyllm.autograd.function import Function
from tinyllm.autograd.tensor import Tensor
from tinyllm.backend import FLOAT_DTYPES
from tinyllm.errors import ArgumentError, DTypeError, ShapeError
from tinyllm.ops.convert import astype, scalar_like
from tinyllm.ops.signature import torch_signature


def _pair(a, b) -> tuple[Tensor, Tensor]:
    if isinstance(a, Tensor):
        if isinstance(b, Tensor):
            if a.array.shape != b.array.shape:
                _check_broadcastable(a.array.shape, b.array.shape)
                if (a.array.ndim == 0) != (b.array.ndim == 0) and a.array.dtype != b.array.dtype:
                    return _zero_dim_follows(a, b)
            return a, b
        if isinstance(b, float) and a._backend.dtype_name(a.array) not in FLOAT_DTYPES:
            a = astype(a, "float32")  # an integer tensor and a Python float meet in float32, as in PyTorch
        return a, scalar_like(b, a)
    if isinstance(a, float) and b._backend.dtype_name(b.array) not in FLOAT_DTYPES:
        b = astype(b, "float32")
    return scalar_like(a, b), b


def _zero_dim_follows(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """PyTorch's promotion: a 0-d tensor beside a tensor with dims of the same kind (float or
    integer) takes that tensor's dtype (float16 * a float32 0-d tensor stays float16)."""
    scalar, other = (a, b) if a.array.ndim == 0 else (b, a)
    if (scalar.dtype in FLOAT_DTYPES) == (other.dtype in FLOAT_DTYPES) and "bool" not in (scalar.dtype, other.dtype):
        scalar = astype(scalar, other.dtype)
    return (scalar, other) if a.array.ndim == 0 else (other, scalar)


def _check_broadcastable(shape_a: tuple, shape_b: tuple) -> None:
    for x, y in zip(reversed(shape_a), reversed(shape_b)):
        if x != y and x != 1 and y != 1:
            raise ShapeError(f"shapes {tuple(shape_a)} and {tuple(shape_b)} cannot be broadcast together")


# -- arithmetic ---------------------------------------------------------------------------------
class Add(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, grad):
        return grad, grad


class Sub(Function):
    def forward(self, a, b):
        return a - b

    def backward(self, grad):
        return grad, -grad


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, grad):
        return grad * self.b, grad * self.a


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, grad):
        grad_a = grad / self.b
        return grad_a, -grad_a * self.a / self.b


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, grad):
        return -grad


class PowScalar(Function):
    def forward(self, a, exponent):
        self.a, self.exponent = a, exponent
        return a**exponent

    def backward(self, grad):
        return grad * self.exponent * self.a ** (self.exponent - 1)


class Pow(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a**b
        return self.out

    def backward(self, grad):
        xp = self.xp
        grad_a = grad * self.b * self.a ** (self.b - 1)
        safe_log = xp.log(xp.where(self.a > 0, self.a, xp.ones_like(self.a)))
        return grad_a, grad * self.out * safe_log


def add(a, b, *, alpha=1) -> Tensor:
    """Return a + alpha * b."""
    return Add.apply(*_pair(a, b if alpha == 1 else mul(b, alpha)))


def sub(a, b, *, alpha=1) -> Tensor:
    """Return a - alpha * b."""
    return Sub.apply(*_pair(a, b if alpha == 1 else mul(b, alpha)))


def mul(a, b) -> Tensor:
    return Mul.apply(*_pair(a, b))


def div(a, b) -> Tensor:
    a, b = _pair(a, b)
    if a.dtype not in FLOAT_DTYPES and b.dtype not in FLOAT_DTYPES:
        a, b = astype(a, "float32"), astype(b, "float32")  # true division of integers gives float32, as in PyTorch
    return Div.apply(a, b)


def neg(a: Tensor) -> Tensor:
    return Neg.apply(a)


def pow(a, b) -> Tensor:  # noqa: A001 - the op's name
    """Return a ** b; a Python-number exponent is a constant (no gradient for it)."""
    if isinstance(a, Tensor) and isinstance(b, (int, float)):
        return PowScalar.apply(a, exponent=b)
    return Pow.apply(*_pair(a, b))


# -- unary math ---------------------------------------------------------------------------------
class Exp(Function):
    def forward(self, a):
        self.out = self.xp.exp(a)
        return self.out

    def backward(self, grad):
        return grad * self.out


class Log(Function):
    def forward(self, a):
        self.a = a
        return self.xp.log(a)

    def backward(self, grad):
        return grad / self.a


class Sqrt(Function):
    def forward(self, a):
        self.out = self.xp.sqrt(a)
        return self.out

    def backward(self, grad):
        return grad / (2 * self.out)


class Abs(Function):
    def forward(self, a):
        self.a = a
        return self.xp.abs(a)

    def backward(self, grad):
        return grad * self.xp.sign(self.a)


class Tanh(Function):
    def forward(self, a):
        self.out = self.xp.tanh(a)
        return self.out

    def backward(self, grad):
        return grad * (1 - self.out * self.out)


class Sigmoid(Function):
    def forward(self, a):
        xp = self.xp
        # exp of a non-positive number only: stays finite for any input
        e = xp.exp(-xp.abs(a))
        self.out = xp.where(a >= 0, 1 / (1 + e), e / (1 + e))
        return self.out

    def backward(self, grad):
        return grad * self.out * (1 - self.out)


class Sin(Function):
    def forward(self, a):
        self.a = a
        return self.xp.sin(a)

    def backward(self, grad):
        return grad * self.xp.cos(self.a)


class Cos(Function):
    def forward(self, a):
        self.a = a
        return self.xp.cos(a)

    def backward(self, grad):
        return -grad * self.xp.sin(self.a)


def sin(a: Tensor) -> Tensor:
    return Sin.apply(_floating(a))


def cos(a: Tensor) -> Tensor:
    return Cos.apply(_floating(a))


def _floating(a: Tensor) -> Tensor:
    """Return a, or a as float32 if it holds integers (math functions of ints give float32 in PyTorch)."""
    return a if a.dtype in FLOAT_DTYPES else astype(a, "float32")


def exp(a: Tensor) -> Tensor:
    return Exp.apply(a)


def log(a: Tensor) -> Tensor:
    return Log.apply(a)


def sqrt(a: Tensor) -> Tensor:
    return Sqrt.apply(a)


def abs(a: Tensor) -> Tensor:  # noqa: A001 - the op's name
    return Abs.apply(a)


def tanh(a: Tensor) -> Tensor:
    return Tanh.apply(a)


def sigmoid(a: Tensor) -> Tensor:
    return Sigmoid.apply(a)


# -- selection ----------------------------------------------------------------------------------
class Maximum(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return self.xp.maximum(a, b)

    def backward(self, grad):
        # ties split the gradient evenly, as PyTorch does
        share_a = self.xp.astype(self.a > self.b, grad.dtype) + 0.5 * self.xp.astype(self.a == self.b, grad.dtype)
        return grad * share_a, grad * (1 - share_a)


class Minimum(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return self.xp.minimum(a, b)

    def backward(self, grad):
        share_a = self.xp.astype(self.a < self.b, grad.dtype) + 0.5 * self.xp.astype(self.a == self.b, grad.dtype)
        return grad * share_a, grad * (1 - share_a)


class Where(Function):
    def forward(self, a, b, condition):
        self.condition = condition
        return self.xp.where(condition, a, b)

    def backward(self, grad):
        zero = self.xp.zeros_like(grad)
        return self.xp.where(self.condition, grad, zero), self.xp.where(self.condition, zero, grad), None


class Clip(Function):
    def forward(self, a, low, high):
        self.a, self.low, self.high = a, low, high
        return self.xp.clip(a, low, high)

    def backward(self, grad):
        inside = self.xp.ones_like(self.a, dtype=self.xp.bool)
        if self.low is not None:
            inside = inside & (self.a >= self.low)
        if self.high is not None:
            inside = inside & (self.a <= self.high)
        return self.xp.where(inside, grad, self.xp.zeros_like(grad))


def maximum(a, b) -> Tensor:
    return Maximum.apply(*_pair(a, b))


def minimum(a, b) -> Tensor:
    return Minimum.apply(*_pair(a, b))


def where(condition: Tensor, a, b) -> Tensor:
    """Return elements of a where condition holds, else of b (condition is a bool tensor)."""
    if condition.dtype != "bool":
        raise DTypeError(f"where: condition must be a bool tensor, got dtype {condition.dtype}")
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else condition
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = scalar_like(float(a), like.float() if condition is like else like)
    a, b = _pair(a, b)
    _check_broadcastable(condition.array.shape, a.array.shape)
    _check_broadcastable(condition.array.shape, b.array.shape)
    return Where.apply(a, b, condition)


@torch_signature
def clip(a: Tensor, min=None, max=None) -> Tensor:  # noqa: A002 - PyTorch's names
    """Return a with values below min raised to min and above max lowered to max.

    Bounds are numbers or tensors broadcastable to a; a tensor bound gets the gradient of the
    elements it replaces, as in PyTorch.
    """
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out = a
        if min is not None:
            out = where(lt(out, min), min, out)
        if max is not None:
            out = where(gt(out, max), max, out)
        return out
    for name, bound in (("min", min), ("max", max)):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, numbers.Real)):
            raise ArgumentError(f"clip(): {name} must be a number or a tensor, got {type(bound).__name__}")
    return Clip.apply(a, low=min, high=max)


def masked_fill(a: Tensor, mask: Tensor, value) -> Tensor:
    """Return a with `value` (a number, or a 0-d tensor that then gets the gradient of the filled
    elements) wherever the bool `mask` (broadcast to a) is True."""
    if isinstance(value, Tensor):
        if value.ndim:
            raise ShapeError(f"masked_fill: value must be a number or a 0-d tensor, got shape {value.shape}")
        return where(mask, value, a)
    return where(mask, scalar_like(float(value) if a.dtype in FLOAT_DTYPES else value, a), a)


# -- comparisons (no gradient) ------------------------------------------------------------------
def _compare(a, b, name: str) -> Tensor:
    a, b = _pair(a, b)
    out = getattr(a._backend.xp, name)(a.array, b.array)
    return Tensor._wrap(out, a._backend, False, None)


def eq(a, b) -> Tensor:
    return _compare(a, b, "equal")


def ne(a, b) -> Tensor:
    return _compare(a, b, "not_equal")


def lt(a, b) -> Tensor:
    return _compare(a, b, "less")


def le(a, b) -> Tensor:
    return _compare(a, b, "less_equal")


def gt(a, b) -> Tensor:
    return _compare(a, b, "greater")


def ge(a, b) -> Tensor:
    return _compare(a, b, "greater_equal")


def logical_not(a: Tensor) -> Tensor:
    return Tensor._wrap(a._backend.xp.logical_not(a.array), a._backend, False, None)
