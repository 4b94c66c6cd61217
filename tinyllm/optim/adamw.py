"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter), written as PyTorch computes it."""

from __future__ import annotations

import math

from tinyllm import kernels
from tinyllm.optim.optimizer import Optimizer


class AdamW(Optimizer):
    """p <- p (1 - lr wd) - lr m_hat / (sqrt(v_hat) + eps); m, v the moving moments of the gradient."""

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        fused: bool | None = None,
    ):
        """fused: run each update as one in-place kernel pass (tinyllm.kernels "adamw" family);
        None lets the kernel registry pick (the Numba kernel on the CPU), False keeps the plain
        array code below. Both give the same parameters to float rounding."""
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})
        self.fused = fused

    def _update(self, param, grad, state: dict, group: dict) -> None:
        xp = param._backend.xp
        lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(param.data)
            state["exp_avg_sq"] = xp.zeros_like(param.data)
        state["step"] += 1
        step = state["step"]
        if self.fused is not False:
            if step == 1:  # the kernels update in place: give the parameter an array of its own
                own = xp.empty_like(param.data)
                own[...] = param.data
                param.data = own
            arrays = (param.data, grad, state["exp_avg"], state["exp_avg_sq"])
            with kernels.use(adamw="numba" if self.fused else None):
                kernel = kernels.choose("adamw", *arrays)
            kernel.update(*arrays, step, lr, beta1, beta2, eps, weight_decay)
            return
        data = param.data
        if weight_decay:
            data = data * (1 - lr * weight_decay)  # decoupled: the decay never enters the moments
        exp_avg = state["exp_avg"] + (grad - state["exp_avg"]) * (1 - beta1)
        exp_avg_sq = state["exp_avg_sq"] * beta2 + grad * grad * (1 - beta2)
        step_size = lr / (1 - beta1**step)
        denominator = xp.sqrt(exp_avg_sq) / math.sqrt(1 - beta2**step) + eps
        param.data = data - step_size * (exp_avg / denominator)
        state["exp_avg"], state["exp_avg_sq"] = exp_avg, exp_avg_sq
