"""Activations and normalized exponentials: relu, gelu (erf and tanh forms), silu, softmax,
log_softmax, and dropout.

softmax and log_softmax subtract the row maximum first, so logits of any size (±1e4 and beyond)
give finite, exact results.
"""

from __future__ import annotations

import math

from tinyllm.autograd.function import Function
from tinyllm.autograd.tensor import Tensor
from tinyllm.backend import RANDOM
from tinyllm.kernels import choose
from tinyllm.ops.elementwise import mul
from tinyllm.ops.signature import normalize_dim, torch_signature
from tinyllm.validate import check_choice, check_float

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


class Relu(Function):
    def forward(self, a):
        self.a = a
        return self.xp.maximum(a, 0.0)

    def backward(self, grad):
        return self.xp.where(self.a > 0, grad, 0.0)


class GeluErf(Function):
    """gelu(x) = x * Phi(x), Phi the standard normal CDF; the math is in kernels/norm_act_reference.py."""

    def forward(self, a):
        self.kernel = choose("norm_act", a)
        out, self.saved = self.kernel.gelu_forward(a)
        return out

    def backward(self, grad):
        return self.kernel.gelu_backward(self.saved, grad)


class GeluTanh(Function):
    """gelu(x) ~= 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), GPT-2's `gelu_new`."""

    def forward(self, a):
        self.a = a
        self.t = self.xp.tanh(_SQRT_2_OVER_PI * (a + 0.044715 * a * a * a))
        return 0.5 * a * (1 + self.t)

    def backward(self, grad):
        a, t = self.a, self.t
        inner_grad = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * a * a)
        return grad * (0.5 * (1 + t) + 0.5 * a * (1 - t * t) * inner_grad)


class Silu(Function):
    """silu(x) = x * sigmoid(x)."""

    def forward(self, a):
        xp = self.xp
        e = xp.exp(-xp.abs(a))
        self.a = a
        self.s = xp.where(a >= 0, 1 / (1 + e), e / (1 + e))
        return a * self.s

    def backward(self, grad):
        s = self.s
        return grad * (s + self.a * s * (1 - s))


class Softmax(Function):
    def forward(self, a, axis):
        xp = self.xp
        self.axis = axis
        e = xp.exp(a - xp.max(a, axis=axis, keepdims=True))
        self.out = e / xp.sum(e, axis=axis, keepdims=True)
        return self.out

    def backward(self, grad):
        s = self.out
        return s * (grad - self.xp.sum(grad * s, axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    def forward(self, a, axis):
        xp = self.xp
        self.axis = axis
        shifted = a - xp.max(a, axis=axis, keepdims=True)
        self.out = shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))
        return self.out

    def backward(self, grad):
        xp = self.xp
        return grad - xp.exp(self.out) * xp.sum(grad, axis=self.axis, keepdims=True)


def relu(a: Tensor) -> Tensor:
    return Relu.apply(a)


def gelu(a: Tensor, approximate: str = "none") -> Tensor:
    """Return GELU of a: exact erf form ("none", BERT) or tanh form ("tanh", GPT-2)."""
    if check_choice("approximate", approximate, ("none", "tanh")) == "none":
        return GeluErf.apply(a)
    return GeluTanh.apply(a)


def silu(a: Tensor) -> Tensor:
    return Silu.apply(a)


@torch_signature
def softmax(a: Tensor, dim: int = -1) -> Tensor:
    """Return exp(a) / sum(exp(a)) along dim, computed stably."""
    return Softmax.apply(a, axis=normalize_dim(dim, a.ndim, "softmax")) if a.ndim else _ones_like(a)


@torch_signature
def log_softmax(a: Tensor, dim: int = -1) -> Tensor:
    """Return a - logsumexp(a) along dim, computed stably."""
    return LogSoftmax.apply(a, axis=normalize_dim(dim, a.ndim, "log_softmax")) if a.ndim else a * 0.0


def _ones_like(a: Tensor) -> Tensor:
    return a * 0.0 + 1.0  # softmax of a 0-d tensor: 1, with a zero gradient, as in PyTorch


def dropout(a: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Return a with each element zeroed with probability p and the rest scaled by 1/(1-p).

    In eval mode (training=False) or with p == 0 it returns a unchanged.
    """
    p = check_float("dropout p", p, 0.0, below=1.0)
    if not training or p == 0.0:
        return a
    backend = a._backend
    keep = RANDOM.uniform(a.shape, "float32") >= p
    scale = (keep / (1.0 - p)).astype(a.dtype)
    return mul(a, Tensor._wrap(backend.from_host(scale), backend, False, None))
