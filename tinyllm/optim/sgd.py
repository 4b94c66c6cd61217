"""SGD with momentum (and optional Nesterov), with L2 weight decay added to the gradient, as in PyTorch."""

from __future__ import annotations

from tinyllm.optim.optimizer import Optimizer


class SGD(Optimizer):
    """v <- momentum v + (1 - dampening) g;  p <- p - lr v  (or lr (g + momentum v) with Nesterov)."""

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ):
        super().__init__(
            params,
            {
                "lr": lr,
                "momentum": momentum,
                "dampening": dampening,
                "weight_decay": weight_decay,
                "nesterov": nesterov,
            },
        )

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
