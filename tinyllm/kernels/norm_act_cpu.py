"""One-pass Numba kernels for the exact GELU and LayerNorm, float32 on the CPU.

Their reference is `norm_act_reference`, which runs everywhere else (float64, CuPy, the strict
device) and when `tinyllm.kernels.use(norm_act="reference")` is set; both have the same functions. Array code makes one pass over
memory per NumPy call (a GELU backward is ~8 of them, each allocating); these kernels read the
input once and keep everything else in registers. They run on one thread: Numba's thread pool
waking beside OpenBLAS's made the GPT training step three times slower when they were parallel.

GELU's erf is the rational approximation of `backend/numpy_backend.py` (max error 3.3e-7); the
Gaussian of its backward comes from NumPy's vectorized exp (this Numba has no SVML).
"""

from __future__ import annotations

import math

from numba import njit, vectorize

from tinyllm.backend import np
from tinyllm.backend.numpy_backend import _ERF_P, _ERF_Q

DEVICE, DTYPES = "cpu", ("float32",)  # what `kernels.use` may force this kernel onto

_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@njit(inline="always", fastmath=True)
def _erf(x):
    x = min(max(x, np.float32(-4.0)), np.float32(4.0))
    x2 = x * x
    num = np.float32(_ERF_P[0])
    for c in _ERF_P[1:]:  # a tuple of constants: the loop is unrolled at compile time
        num = num * x2 + np.float32(c)
    den = np.float32(_ERF_Q[0])
    for c in _ERF_Q[1:]:
        den = den * x2 + np.float32(c)
    return x * num / den


@vectorize(["float32(float32)"], fastmath=True, cache=True)
def _gelu_forward(x):
    return x * np.float32(0.5) * (np.float32(1.0) + _erf(x * np.float32(_INV_SQRT_2)))


@vectorize(["float32(float32, float32, float32)"], fastmath=True, cache=True)
def _gelu_backward(x, grad, gauss):
    cdf = np.float32(0.5) * (np.float32(1.0) + _erf(x * np.float32(_INV_SQRT_2)))
    return grad * (cdf + x * np.float32(_INV_SQRT_2PI) * gauss)


def gelu_forward(x):
    """Return (gelu(x) = x * Phi(x), saved) for a float32 array; saved is x alone."""
    return _gelu_forward(x), x


def gelu_backward(x, grad):
    """Return grad * gelu'(x) = grad * (Phi(x) + x * phi(x)), x the saved input."""
    # exp(-x^2/2) by NumPy, whose exp is vectorized (a scalar libm call inside the kernel is 4x slower)
    return _gelu_backward(x, grad, np.exp(x * x * np.float32(-0.5)))


@njit(fastmath=True, cache=True)
def _layer_norm_forward(x, weight, bias, eps, out, x_hat, inv_std):
    rows, width = x.shape
    for r in range(rows):
        mean = np.float32(0.0)
        for j in range(width):
            mean += x[r, j]
        mean /= width
        var = np.float32(0.0)
        for j in range(width):
            d = x[r, j] - mean
            var += d * d
        s = np.float32(1.0) / np.sqrt(var / width + eps)
        inv_std[r] = s
        for j in range(width):
            h = (x[r, j] - mean) * s
            x_hat[r, j] = h
            out[r, j] = h * weight[j] + bias[j]


@njit(fastmath=True, cache=True)
def _layer_norm_backward(grad, x_hat, inv_std, weight, grad_x):
    rows, width = grad.shape
    for r in range(rows):
        mean_g = np.float32(0.0)
        mean_gx = np.float32(0.0)
        for j in range(width):
            g = grad[r, j] * weight[j]
            mean_g += g
            mean_gx += g * x_hat[r, j]
        mean_g /= width
        mean_gx /= width
        for j in range(width):
            grad_x[r, j] = inv_std[r] * (grad[r, j] * weight[j] - mean_g - x_hat[r, j] * mean_gx)


def layer_norm_forward(x, weight, bias, eps: float):
    """Return (out, saved) of LayerNorm over the last axis: out of x's shape; saved holds x_hat
    (rows, C), inv_std (rows,) = 1 / sqrt(var + eps) per row, and the weight."""
    x2 = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    out, x_hat = np.empty_like(x2), np.empty_like(x2)
    inv_std = np.empty(x2.shape[0], dtype=x.dtype)
    _layer_norm_forward(x2, weight, bias, np.float32(eps), out, x_hat, inv_std)
    return out.reshape(x.shape), (x_hat, inv_std, weight)


def layer_norm_backward(saved, grad):
    """Return (grad_x, grad_weight, grad_bias) of LayerNorm from the saved x_hat, inv_std, weight."""
    x_hat, inv_std, weight = saved
    g2 = np.ascontiguousarray(grad).reshape(-1, grad.shape[-1])
    grad_x = np.empty_like(g2)
    _layer_norm_backward(g2, x_hat, inv_std, np.ascontiguousarray(weight), grad_x)
    grad_weight = np.sum(g2 * x_hat, axis=0)
    grad_bias = np.sum(g2, axis=0)
    return grad_x.reshape(grad.shape), grad_weight, grad_bias
