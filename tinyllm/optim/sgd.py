"""SGD with momentum (and optional Nesterov), with L2 weight decay added to the gradient, as in PyTorch."""

from __future__ import annotations

from tinyllm.errors import ArgumentError
from tinyllm.optim.optimizer import Optimizer
from tinyllm.validate import check_float


class SGD(Optimizer):
    """v <- momentum v + (1 - dampening) g;  p <- p - lr v  (or lr (g + momentum v) with Nesterov).

    `maximize` ascends instead; `foreach` and `fused` choose an implementation in PyTorch and are
    accepted as they are.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ):
        super().__init__(
            params,
            {
                "lr": lr,
                "momentum": momentum,
                "dampening": dampening,
                "weight_decay": weight_decay,
                "nesterov": nesterov,
                "maximize": maximize,
                "foreach": foreach,
                "differentiable": differentiable,
                "fused": fused,
            },
        )

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        momentum = check_float("momentum", group["momentum"], minimum=0.0)
        dampening = check_float("dampening", group["dampening"])
        check_float("weight_decay", group["weight_decay"], minimum=0.0)
        if group["nesterov"] and (momentum <= 0 or dampening != 0):
            raise ArgumentError("nesterov momentum needs momentum > 0 and dampening = 0")

    def _update(self, param, grad, state: dict, group: dict) -> None:
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * param.array
        momentum = group["momentum"]
        if momentum:
            if "momentum_buffer" not in state:
                buffer = param._backend.xp.asarray(grad, copy=True)
            else:
                buffer = state["momentum_buffer"] * momentum + grad * (1 - group["dampening"])
            state["momentum_buffer"] = buffer
            grad = grad + momentum * buffer if group["nesterov"] else buffer
        param.array = param.array - group["lr"] * grad
