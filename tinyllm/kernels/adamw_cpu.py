"""One AdamW step for one parameter in a single Numba pass, float32 and float64 on the CPU.

In the one pool of a process tuned by `tune_for_training()` (kernels/runtime.py) a parameter of
PARALLEL_WORK elements or more is updated in chunks over Numba's threads. AdamW hands this kernel
a whole parameter group as one flat array (optim/adamw.py): the GPT preset's 52 parameters,
0.81 M elements, take 0.33-0.48 ms a step on 2 threads, the optimizer's Python included.

The loop is compiled with NumPy's error model: under Python's, every `/` checks for a zero
divisor and raises, and that branch kept LLVM from vectorizing the loop. On the preset's 0.81 M
elements one call took 1.43 ms so and takes 0.12 ms vectorized (2 threads, a 2-core AMD EPYC). A
zero divisor (eps = 0 and a moment of 0) now gives NaN, as in PyTorch.

The reference (adamw_reference.py) is about twelve whole-array NumPy passes per parameter, half of
them allocating a temporary; for the GPT preset's 0.8 M parameters in 50 arrays that is ~600
small NumPy calls per step. This kernel reads param, grad and the two moments once, updates all
three in place, and allocates nothing. The math is the reference's, line for line.
"""

from __future__ import annotations

import math

from numba import njit, prange

from tinyllm.backend import np
from tinyllm.errors import DeviceError
from tinyllm.kernels import runtime

DEVICE, DTYPES = "cpu", ("float32", "float64")  # what `kernels.use` may force this kernel onto


@njit(cache=True, fastmath=True, error_model="numpy")  # no zero check on `/`: the loop vectorizes
def _update(param, grad, exp_avg, exp_avg_sq, decay, one_minus_beta1, beta2, one_minus_beta2, inv_bias2, step_size,
            eps):  # fmt: skip
    for i in range(param.size):
        g = grad[i]
        m = exp_avg[i] + (g - exp_avg[i]) * one_minus_beta1
        v = exp_avg_sq[i] * beta2 + g * g * one_minus_beta2
        exp_avg[i] = m
        exp_avg_sq[i] = v
        param[i] = param[i] * decay - step_size * (m / (np.sqrt(v) * inv_bias2 + eps))


CHUNK = 2**13  # elements of one task of `_update_chunks`
PARALLEL_WORK = 2**14  # elements from which, in the one pool of a tuned process, the update is split


@njit(parallel=True, cache=True)
def _update_chunks(param, grad, exp_avg, exp_avg_sq, decay, one_minus_beta1, beta2, one_minus_beta2, inv_bias2,
                   step_size, eps):  # fmt: skip
    """`_update` on CHUNK elements a task, over Numba's threads."""
    n = param.size
    for c in prange(-(-n // CHUNK)):
        start, stop = c * CHUNK, min(n, (c + 1) * CHUNK)
        _update(param[start:stop], grad[start:stop], exp_avg[start:stop], exp_avg_sq[start:stop], decay,
                one_minus_beta1, beta2, one_minus_beta2, inv_bias2, step_size, eps)  # fmt: skip


def _parallel(size: int) -> bool:
    """Return whether an update of `size` elements is split over Numba's threads."""
    return size >= PARALLEL_WORK and runtime.blas_on_numba_threads()


def update(param, grad, exp_avg, exp_avg_sq, step: int, lr: float, beta1: float, beta2: float, eps: float,
           weight_decay: float) -> None:  # fmt: skip
    """Run one AdamW step in place on param, exp_avg and exp_avg_sq; return nothing."""
    if not (param.flags.c_contiguous and exp_avg.flags.c_contiguous and exp_avg_sq.flags.c_contiguous):
        raise DeviceError("adamw kernel 'numba' updates in place and needs C-contiguous param and moments")
    dtype = param.dtype.type  # scalars in the arrays' dtype: float32 math stays float32
    kernel = _update_chunks if _parallel(param.size) else _update
    kernel(
        param.reshape(-1),  # views, since the arrays are C-contiguous
        np.ascontiguousarray(grad, dtype=param.dtype).reshape(-1),
        exp_avg.reshape(-1),
        exp_avg_sq.reshape(-1),
        dtype(1 - lr * weight_decay),
        dtype(1 - beta1),
        dtype(beta2),
        dtype(1 - beta2),
        dtype(1 / math.sqrt(1 - beta2**step)),
        dtype(lr / (1 - beta1**step)),
        dtype(eps),
    )
