"""One AdamW step for one parameter in plain array code, in place: the teaching version and the
oracle of `adamw_cpu`, and the kernel on every backend the Numba one does not take.

update(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay) overwrites
param and the two moment arrays (all of one shape and dtype), as PyTorch's AdamW computes it:

    param   <- param * (1 - lr * weight_decay)              (decoupled decay: not in the moments)
    m       <- m + (grad - m) * (1 - beta1)
    v       <- v * beta2 + grad^2 * (1 - beta2)
    param   <- param - lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
"""

from __future__ import annotations

import math

from tinyllm.backend import backend_of


def update(param, grad, exp_avg, exp_avg_sq, step: int, lr: float, beta1: float, beta2: float, eps: float,
           weight_decay: float) -> None:  # fmt: skip
    """Run one AdamW step in place on param, exp_avg and exp_avg_sq; return nothing."""
    xp = backend_of(param).xp
    if weight_decay:
        param *= 1 - lr * weight_decay
    exp_avg += (grad - exp_avg) * (1 - beta1)
    exp_avg_sq *= beta2
    exp_avg_sq += grad * grad * (1 - beta2)
    denominator = xp.sqrt(exp_avg_sq) / math.sqrt(1 - beta2**step) + eps
    param -= lr / (1 - beta1**step) * (exp_avg / denominator)
