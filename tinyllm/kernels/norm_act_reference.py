"""Exact GELU and LayerNorm in plain array code: the teaching version, the oracle of
`norm_act_cpu`, and the kernel on every backend and dtype the Numba kernels do not take.

Each forward returns (out, saved) and each backward takes (saved, grad), the protocol of every
kernel (see kernels/__init__.py).
"""

from __future__ import annotations

import math

from tinyllm.backend import backend_of

_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def gelu_forward(x):
    """Return (x * Phi(x), saved), Phi the standard normal CDF (the exact, erf form of GELU)."""
    backend = backend_of(x)
    cdf = 0.5 * (1 + backend.erf(x * _INV_SQRT_2))
    return x * cdf, (x, cdf)


def gelu_backward(saved, grad):
    """Return d loss / d x = grad * (Phi(x) + x phi(x)), phi the standard normal density."""
    x, cdf = saved
    pdf = _INV_SQRT_2PI * backend_of(x).xp.exp(-0.5 * x * x)
    return grad * (cdf + x * pdf)


def layer_norm_forward(x, weight, bias, eps: float):
    """Return ((x - mean) / sqrt(var + eps) * weight + bias over the last axis, saved)."""
    xp = backend_of(x).xp
    mu = xp.mean(x, axis=-1, keepdims=True)  # (..., 1)
    centered = x - mu
    inv_std = 1.0 / xp.sqrt(xp.mean(centered * centered, axis=-1, keepdims=True) + eps)  # (..., 1)
    x_hat = centered * inv_std
    return x_hat * weight + bias, (x_hat, inv_std, weight)


def layer_norm_backward(saved, grad):
    """Return (grad_x, grad_weight, grad_bias) of LayerNorm.

    With g = grad * weight: dx = inv_std * (g - mean(g) - x_hat * mean(g * x_hat)), the mean over
    the normalized axis; the weight's and bias's gradients are summed over every other axis.
    """
    x_hat, inv_std, weight = saved
    xp = backend_of(x_hat).xp
    g_hat = grad * weight
    grad_x = inv_std * (
        g_hat - xp.mean(g_hat, axis=-1, keepdims=True) - x_hat * xp.mean(g_hat * x_hat, axis=-1, keepdims=True)
    )
    rows = (-1, x_hat.shape[-1])
    grad_weight = xp.sum(xp.reshape(grad * x_hat, rows), axis=0)
    grad_bias = xp.sum(xp.reshape(grad, rows), axis=0)
    return grad_x, grad_weight, grad_bias
