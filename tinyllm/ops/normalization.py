"""LayerNorm and RMSNorm over the last axis, each one Function with its analytic backward."""

from __future__ import annotations

from tinyllm.autograd.function import Function
from tinyllm.autograd.tensor import Tensor
from tinyllm.errors import ShapeError
from tinyllm.kernels import choose


class LayerNorm(Function):
    """The math is in kernels/norm_act_reference.py; a Numba kernel runs it in one pass on the CPU."""

    def forward(self, x, weight, bias, eps):
        self.kernel = choose("norm_act", x, weight, bias)
        out, self.saved = self.kernel.layer_norm_forward(x, weight, bias, eps)
        return out

    def backward(self, grad):
        return self.kernel.layer_norm_backward(self.saved, grad)


class RMSNorm(Function):
    def forward(self, x, weight, eps):
        xp = self.xp
        # sum / n, not mean: NumPy's mean costs ~11 us more a call on a row, and decoding calls this 61 times a token
        self.inv_rms = 1.0 / xp.sqrt(xp.sum(x * x, axis=-1, keepdims=True) / x.shape[-1] + eps)
        self.x_hat = x * self.inv_rms
        self.weight = weight
        return self.x_hat * weight

    def backward(self, grad):
        xp = self.xp
        g_hat = grad * self.weight
        mean = xp.sum(g_hat * self.x_hat, axis=-1, keepdims=True) / grad.shape[-1]
        grad_x = self.inv_rms * (g_hat - self.x_hat * mean)
        return grad_x, grad * self.x_hat


def _check(x: Tensor, weight: Tensor, name: str) -> None:
    if weight.shape != x.shape[-1:]:
        raise ShapeError(f"{name}: weight of shape {weight.shape} does not fit input of shape {x.shape}")


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """Return (x - mean) / sqrt(var + eps) * weight + bias over the last axis."""
    _check(x, weight, "layer_norm")
    _check(x, bias, "layer_norm")
    return LayerNorm.apply(x, weight, bias, eps=eps)


def rms_norm(x: Tensor, weight: Tensor, eps: float = 1e-6) -> Tensor:
    """Return x / sqrt(mean(x^2) + eps) * weight over the last axis (Llama's RMSNorm)."""
    _check(x, weight, "rms_norm")
    return RMSNorm.apply(x, weight, eps=eps)
