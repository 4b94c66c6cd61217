"""One-pass Numba kernels for the exact GELU and LayerNorm, float32 on the CPU.

Their reference is `norm_act_reference`, which runs everywhere else (float64, CuPy, the strict
device) and when `tinyllm.kernels.use(norm_act="reference")` is set; both have the same functions. Array code makes one pass over
memory per NumPy call (a GELU backward is ~8 of them, each allocating); these kernels read the
input once and keep everything else in registers, and LayerNorm's backward sums the weight's and
the bias's gradients in the same pass.

Threads: in the one pool of a process tuned by `tune_for_training()` (see kernels/runtime.py)
LayerNorm's rows and GELU's forward (in chunks) are split over Numba's threads from
PARALLEL_WORK elements up (on 2 cores LayerNorm of 3072 x 128 was 2.2-2.7x faster, GELU's forward
of 3072 x 512 2.9x); anywhere else they run on
the calling thread, since Numba's threads waking beside OpenBLAS's made the GPT training step
three times slower when they were parallel.

GELU's erf is the rational approximation of `backend/numpy_backend.py` (max error 3.3e-7); the
Gaussian of its backward comes from NumPy's vectorized exp (this Numba has no SVML).
"""

from __future__ import annotations

import math

import numba
from numba import njit, prange, vectorize

from tinyllm.backend import np
from tinyllm.backend.numpy_backend import _ERF_P, _ERF_Q
from tinyllm.kernels import runtime

DEVICE, DTYPES = "cpu", ("float32",)  # what `kernels.use` may force this kernel onto

PARALLEL_WORK = 2**15  # elements from which the kernels split their work over the one pool's threads
CHUNK = 4096  # elements of one GELU task

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


@njit(inline="always", fastmath=True)
def _gelu(x):
    return x * np.float32(0.5) * (np.float32(1.0) + _erf(x * np.float32(_INV_SQRT_2)))


@njit(inline="always", fastmath=True)
def _gelu_grad(x, grad, gauss):
    cdf = np.float32(0.5) * (np.float32(1.0) + _erf(x * np.float32(_INV_SQRT_2)))
    return grad * (cdf + x * np.float32(_INV_SQRT_2PI) * gauss)


@vectorize(["float32(float32)"], fastmath=True, cache=True)
def _gelu_forward(x):
    return _gelu(x)


@vectorize(["float32(float32, float32, float32)"], fastmath=True, cache=True)
def _gelu_backward(x, grad, gauss):
    return _gelu_grad(x, grad, gauss)


# A task runs the vectorized ufunc on its chunk: the same loop written in the kernel was not
# vectorized by LLVM and ran 8x slower than the ufunc. The backward stays whole on the calling
# thread: its three-input ufunc called chunk by chunk ran 2x slower on two threads than on one.
@njit(parallel=True, cache=True)
def _gelu_forward_chunks(x, out):
    """out = gelu(x) for flat arrays, CHUNK elements a task."""
    n = x.size
    for c in prange(-(-n // CHUNK)):
        start, stop = c * CHUNK, min(n, (c + 1) * CHUNK)
        _gelu_forward(x[start:stop], out[start:stop])


def _parallel(size: int) -> bool:
    """Return whether a kernel on `size` elements splits its work over Numba's threads."""
    return size >= PARALLEL_WORK and runtime.blas_on_numba_threads()


def gelu_forward(x):
    """Return (gelu(x) = x * Phi(x), saved) for a float32 array; saved is x alone."""
    if not _parallel(x.size):
        return _gelu_forward(x), x
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    _gelu_forward_chunks(x.reshape(-1), out.reshape(-1))
    return out, x


def gelu_backward(x, grad):
    """Return grad * gelu'(x) = grad * (Phi(x) + x * phi(x)), x the saved input."""
    # exp(-x^2/2) by NumPy, whose exp is vectorized (a scalar libm call inside the kernel is 4x slower)
    return _gelu_backward(x, grad, np.exp(x * x * np.float32(-0.5)))


@njit(parallel=True, fastmath=True, cache=True)
def _layer_norm_forward(x, weight, bias, eps, out, x_hat, inv_std):
    rows, width = x.shape
    for r in prange(rows):
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


@njit(parallel=True, fastmath=True, cache=True)
def _layer_norm_backward(grad, x_hat, inv_std, weight, grad_x, grad_weight_parts, grad_bias_parts):
    """grad_x, and the weight's and bias's gradients summed over each part's rows (in float64):
    one part a thread, so that no two threads add into one sum."""
    rows, width = grad.shape
    n_parts = grad_weight_parts.shape[0]
    step = -(-rows // n_parts)
    for p in prange(n_parts):
        grad_weight, grad_bias = grad_weight_parts[p], grad_bias_parts[p]
        grad_weight[:] = 0.0
        grad_bias[:] = 0.0
        for r in range(p * step, min(rows, (p + 1) * step)):
            mean_g = np.float32(0.0)
            mean_gx = np.float32(0.0)
            for j in range(width):
                g = grad[r, j] * weight[j]
                mean_g += g
                mean_gx += g * x_hat[r, j]
            mean_g /= width
            mean_gx /= width
            for j in range(width):
                g = grad[r, j]
                grad_x[r, j] = inv_std[r] * (g * weight[j] - mean_g - x_hat[r, j] * mean_gx)
                grad_weight[j] += g * x_hat[r, j]
                grad_bias[j] += g


# The same loops on the calling thread (prange runs as range), for a process without the one pool
_layer_norm_forward_serial = njit(fastmath=True, cache=True)(_layer_norm_forward.py_func)
_layer_norm_backward_serial = njit(fastmath=True, cache=True)(_layer_norm_backward.py_func)


def layer_norm_forward(x, weight, bias, eps: float):
    """Return (out, saved) of LayerNorm over the last axis: out of x's shape; saved holds x_hat
    (rows, C), inv_std (rows,) = 1 / sqrt(var + eps) per row, and the weight."""
    x2 = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    out, x_hat = np.empty_like(x2), np.empty_like(x2)
    inv_std = np.empty(x2.shape[0], dtype=x.dtype)
    kernel = _layer_norm_forward if _parallel(x2.size) else _layer_norm_forward_serial
    kernel(x2, weight, bias, np.float32(eps), out, x_hat, inv_std)
    return out.reshape(x.shape), (x_hat, inv_std, weight)


def layer_norm_backward(saved, grad):
    """Return (grad_x, grad_weight, grad_bias) of LayerNorm from the saved x_hat, inv_std, weight."""
    x_hat, inv_std, weight = saved
    g2 = np.ascontiguousarray(grad, dtype=x_hat.dtype).reshape(-1, grad.shape[-1])
    grad_x = np.empty_like(g2)
    parallel = _parallel(g2.size)
    parts = max(1, min(numba.get_num_threads(), g2.shape[0])) if parallel else 1
    grad_weight = np.empty((parts, g2.shape[1]), dtype=np.float64)
    grad_bias = np.empty((parts, g2.shape[1]), dtype=np.float64)
    kernel = _layer_norm_backward if parallel else _layer_norm_backward_serial
    kernel(g2, x_hat, inv_std, np.ascontiguousarray(weight), grad_x, grad_weight, grad_bias)
    dtype = x_hat.dtype
    return grad_x.reshape(grad.shape), grad_weight.sum(axis=0).astype(dtype), grad_bias.sum(axis=0).astype(dtype)
