"""One-pass Numba kernels for the exact GELU and LayerNorm, float32 on the CPU.

Their reference is `norm_act_reference`, which runs everywhere else (float64, CuPy, the strict
device) and when `tinyllm.kernels.use(norm_act="reference")` is set; both have the same functions. Array code makes one pass over
memory per NumPy call (a GELU backward is ~8 of them, each allocating); these kernels read the
input once and keep everything else in registers, and LayerNorm's backward sums the weight's and
the bias's gradients in the same pass.

Threads: in the one pool of a process tuned by `tune_for_training()` (see kernels/runtime.py)
LayerNorm's rows and GELU's forward and backward (in chunks) are split over Numba's threads from
PARALLEL_WORK elements up (on 2 cores LayerNorm of 3072 x 128 was 2.2-2.7x faster, GELU's forward
of 3072 x 512 2.9x, its backward 1.9x); anywhere else they run on the calling thread, since
Numba's threads waking beside OpenBLAS's made the GPT training step three times slower when they
were parallel.

GELU's erf is the rational approximation of `backend/numpy_backend.py` (max error 3.3e-7). The
Gaussian exp(-x^2/2) of its backward is computed in the kernel too: this Numba has no SVML, so
`math.exp` would be a scalar libm call that stops LLVM from vectorizing the loop; `_gauss` is
range reduction by powers of two and a polynomial, all arithmetic and selects, which vectorizes.

LayerNorm keeps every scalar in float32: in Numba a float32 divided by the integer width is a
float64, and one such scalar made the row loops float64 with conversions. Multiplying by a float32
1 / width instead, LayerNorm of 768 x 128 went from 56-60 to 21-28 µs forward and from 58-75 to
33-42 µs backward (2 threads, a 2-core AMD EPYC).
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
_LOG2_E = 1.0 / math.log(2.0)
# 2^-f for f in [0, 1), highest power first: a least-squares fit at Chebyshev nodes, max relative
# error 1.04e-7 in float64 (numpy.polyfit of exp2(-f), degree 5)
_EXP2_NEG = (-9.475539834e-04, 9.210879822e-03, -5.529961471e-02, 2.401794943e-01, -6.931432028e-01, 9.999999453e-01)


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
def _gauss(x):
    """exp(-x^2/2) to ~1e-7 relative, as 2^-y = 2^-k * 2^-f with y = x^2/2 * log2(e) = k + f.

    2^-f on [0, 1) is a degree-5 polynomial; 2^-k is the product of k's binary digits' powers,
    selected without branches. From y = 32 (|x| > 6.6) the result is 0: x * phi(x) is below 1e-9
    there and Phi(x) is exactly 0 or 1 in float32, so GELU's gradient is 0 or 1 as in PyTorch.
    """
    y = x * x * np.float32(0.5 * _LOG2_E)
    y_low = min(y, np.float32(31.0))  # keeps the polynomial finite where the result is 0
    k = np.floor(y_low)
    f = y_low - k
    p = np.float32(_EXP2_NEG[0])
    for c in _EXP2_NEG[1:]:
        p = p * f + np.float32(c)
    bits = np.int32(k)
    for i in range(5):  # unrolled at compile time
        p *= np.float32(2.0 ** -(1 << i)) if bits & (1 << i) else np.float32(1.0)
    return p if y < np.float32(32.0) else np.float32(0.0)


@njit(inline="always", fastmath=True)
def _gelu_grad(x, grad):
    cdf = np.float32(0.5) * (np.float32(1.0) + _erf(x * np.float32(_INV_SQRT_2)))
    return grad * (cdf + x * np.float32(_INV_SQRT_2PI) * _gauss(x))


@vectorize(["float32(float32)"], fastmath=True, cache=True)
def _gelu_forward(x):
    return _gelu(x)


@vectorize(["float32(float32, float32)"], fastmath=True, cache=True)
def _gelu_backward(x, grad):
    return _gelu_grad(x, grad)


# A task runs the vectorized ufunc on its chunk: the same loop written in the kernel was not
# vectorized by LLVM and ran 8x slower than the ufunc.
@njit(parallel=True, cache=True)
def _gelu_forward_chunks(x, out):
    """out = gelu(x) for flat arrays, CHUNK elements a task."""
    n = x.size
    for c in prange(-(-n // CHUNK)):
        start, stop = c * CHUNK, min(n, (c + 1) * CHUNK)
        _gelu_forward(x[start:stop], out[start:stop])


@njit(parallel=True, cache=True)
def _gelu_backward_chunks(x, grad, out):
    """out = grad * gelu'(x) for flat arrays, CHUNK elements a task."""
    n = x.size
    for c in prange(-(-n // CHUNK)):
        start, stop = c * CHUNK, min(n, (c + 1) * CHUNK)
        _gelu_backward(x[start:stop], grad[start:stop], out[start:stop])


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
    if not _parallel(x.size):
        return _gelu_backward(x, grad)
    x = np.ascontiguousarray(x)
    grad = np.ascontiguousarray(np.broadcast_to(grad, x.shape), dtype=x.dtype)
    out = np.empty_like(x)
    _gelu_backward_chunks(x.reshape(-1), grad.reshape(-1), out.reshape(-1))
    return out


@njit(parallel=True, fastmath=True, cache=True)
def _layer_norm_forward(x, weight, bias, eps, out, x_hat, inv_std):
    rows, width = x.shape
    inv_width = np.float32(1.0 / width)
    for r in prange(rows):
        mean = np.float32(0.0)
        for j in range(width):
            mean += x[r, j]
        mean *= inv_width
        var = np.float32(0.0)
        for j in range(width):
            d = x[r, j] - mean
            var += d * d
        s = np.float32(1.0) / np.sqrt(var * inv_width + eps)
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
    inv_width = np.float32(1.0 / width)
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
            mean_g *= inv_width
            mean_gx *= inv_width
            s = inv_std[r]
            for j in range(width):
                g = grad[r, j]
                grad_x[r, j] = s * (g * weight[j] - mean_g - x_hat[r, j] * mean_gx)
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
