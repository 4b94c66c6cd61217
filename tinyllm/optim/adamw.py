"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter), written as PyTorch computes it.

The one Adam update of tinyllm: `Adam` (adam.py) is this class with the weight decay added to
the gradient instead (`decoupled_weight_decay=False`), as PyTorch's Adam.
"""

from __future__ import annotations

import math

from tinyllm.optim.optimizer import Optimizer
from tinyllm.validate import check_float


class AdamW(Optimizer):
    """p <- p (1 - lr wd) - lr m_hat / (sqrt(v_hat) + eps); m, v the moving moments of the gradient.

    amsgrad divides by the running maximum of v instead; `maximize` ascends; `foreach` and
    `fused` choose an implementation in PyTorch and are accepted as they are.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ):
        super().__init__(params, self._defaults(locals(), decoupled_weight_decay=True))

    @staticmethod
    def _defaults(arguments: dict, decoupled_weight_decay: bool) -> dict:
        names = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "foreach", "capturable")
        defaults = {name: arguments[name] for name in (*names, "differentiable", "fused")}
        defaults["betas"] = tuple(defaults["betas"])
        return {**defaults, "decoupled_weight_decay": decoupled_weight_decay}

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        check_float("eps", group["eps"], minimum=0.0)
        check_float("weight_decay", group["weight_decay"], minimum=0.0)
        beta1, beta2 = group["betas"]
        check_float("beta1 (betas[0])", beta1, minimum=0.0, below=1.0)
        check_float("beta2 (betas[1])", beta2, minimum=0.0, below=1.0)

    def _update(self, param, grad, state: dict, group: dict) -> None:
        xp = param._backend.xp
        lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(param.array)
            state["exp_avg_sq"] = xp.zeros_like(param.array)
            if group.get("amsgrad"):
                state["max_exp_avg_sq"] = xp.zeros_like(param.array)
        state["step"] += 1
        step = state["step"]
        data = param.array
        if weight_decay and group.get("decoupled_weight_decay", True):
            data = data * (1 - lr * weight_decay)  # decoupled: the decay never enters the moments
        elif weight_decay:
            grad = grad + weight_decay * data  # Adam's L2 penalty, through the moments
        exp_avg = state["exp_avg"] + (grad - state["exp_avg"]) * (1 - beta1)
        exp_avg_sq = state["exp_avg_sq"] * beta2 + grad * grad * (1 - beta2)
        if group.get("amsgrad"):
            state["max_exp_avg_sq"] = xp.maximum(state["max_exp_avg_sq"], exp_avg_sq)
            second_moment = state["max_exp_avg_sq"]
        else:
            second_moment = exp_avg_sq
        step_size = lr / (1 - beta1**step)
        denominator = xp.sqrt(second_moment) / math.sqrt(1 - beta2**step) + eps
        param.array = data - step_size * (exp_avg / denominator)
        state["exp_avg"], state["exp_avg_sq"] = exp_avg, exp_avg_sq
