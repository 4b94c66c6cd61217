"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter), written as PyTorch computes it.

The one Adam update of tinyllm: `Adam` (adam.py) is this class with the weight decay added to
the gradient instead (`decoupled_weight_decay=False`), as PyTorch's Adam.
"""

from __future__ import annotations

import math

from tinyllm import kernels
from tinyllm.autograd.function import record_write
from tinyllm.optim.optimizer import Optimizer
from tinyllm.validate import check_float


class AdamW(Optimizer):
    """p <- p (1 - lr wd) - lr m_hat / (sqrt(v_hat) + eps); m, v the moving moments of the gradient.

    amsgrad divides by the running maximum of v instead; `maximize` ascends. `fused`: None (the
    default) runs each update as one in-place pass of the "adamw" kernel family where it applies
    (the Numba kernel on the CPU), True forces that kernel, False keeps the array code; all give
    the same parameters to float rounding. `foreach` chooses an implementation in PyTorch and is
    accepted as it is.

    On the CPU backend a fused group whose parameters all have a gradient is updated in one kernel
    call: its parameters and moments become views of three flat arrays (`_FlatGroup`), and the
    gradients are copied into a fourth. For the GPT preset that is one call instead of 52.
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
        self._flat: dict[int, _FlatGroup] = {}  # by the index of the group's first parameter

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
        if self._fused_applies(group):
            self._fused_update(param, grad, state, group, step)
            return
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

    def _fused_applies(self, group: dict) -> bool:
        """Return whether this group's update runs as one in-place kernel pass: AdamW's decoupled
        decay without amsgrad or maximize, unless `fused=False` asked for the array code."""
        plain = group.get("amsgrad") or group.get("maximize") or not group.get("decoupled_weight_decay", True)
        return group.get("fused") is not False and not plain

    def _fused_update(self, param, grad, state: dict, group: dict, step: int) -> None:
        """Update param and its moments in place with the "adamw" kernel family (the same numbers
        as the array code to float rounding); the write is recorded for the version counter."""
        xp = param._backend.xp
        if step == 1:  # the kernels update in place: give the parameter an array of its own
            own = xp.empty_like(param.array)
            own[...] = param.array
            param.array = own
        arrays = (param.array, grad, state["exp_avg"], state["exp_avg_sq"])
        with kernels.use(adamw="numba" if group.get("fused") else None):
            kernel = kernels.choose("adamw", *arrays)
        (beta1, beta2) = group["betas"]
        kernel.update(*arrays, step, group["lr"], beta1, beta2, group["eps"], group["weight_decay"])
        record_write(param)

    def _update_group(self, group: dict, first: int) -> bool:
        """Update a fused CPU group in one kernel call over its flat arrays and return True; return
        False (each parameter on its own) when a parameter has no gradient, dtypes differ, or the
        parameters' step counts differ (some skipped a step)."""
        params = group["params"]
        if len(params) < 2 or not self._fused_applies(group) or params[0]._backend.name != "cpu":
            return False
        dtype = params[0].array.dtype
        if any(p.grad is None or p.array.dtype != dtype for p in params):
            return False
        states = [self.state.setdefault(index, {}) for index in range(first, first + len(params))]
        steps = {state.get("step", 0) for state in states}
        if len(steps) != 1:
            return False
        flat = self._flat.get(first)
        if flat is None or not flat.holds(params, states):
            flat = self._flat[first] = _FlatGroup(params, states)
        xp = params[0]._backend.xp
        xp.concatenate([xp.reshape(p.grad.array, (-1,)) for p in params], out=flat.grad)
        step = steps.pop() + 1
        for state in states:
            state["step"] = step
        arrays = (flat.param, flat.grad, flat.exp_avg, flat.exp_avg_sq)
        with kernels.use(adamw="numba" if group.get("fused") else None):
            kernel = kernels.choose("adamw", *arrays)
        (beta1, beta2) = group["betas"]
        kernel.update(*arrays, step, group["lr"], beta1, beta2, group["eps"], group["weight_decay"])
        for param in params:
            record_write(param)
        return True


class _FlatGroup:
    """A group's parameters and moments as views of three flat arrays, plus a flat array that the
    gradients are copied into: the whole group is then one array for the AdamW kernel.

    Laying out copies the current values in (moments of zero for a parameter without state) and
    makes each `param.array`, `state["exp_avg"]` and `state["exp_avg_sq"]` a view. Anything that
    replaces one of those arrays (`load_state_dict`, an assignment to `param.array`) is seen by
    `holds`, and the optimizer lays the group out again.
    """

    def __init__(self, params, states) -> None:
        xp = params[0]._backend.xp
        dtype, sizes = params[0].array.dtype, [p.array.size for p in params]
        total = sum(sizes)
        self.param, self.grad, self.exp_avg, self.exp_avg_sq = (xp.empty(total, dtype=dtype) for _ in range(4))
        self.views = []
        start = 0
        for param, state, size in zip(params, states, sizes):
            views = [
                xp.reshape(flat[start : start + size], param.shape)
                for flat in (self.param, self.exp_avg, self.exp_avg_sq)
            ]
            views[0][...] = param.array
            for view, name in zip(views[1:], ("exp_avg", "exp_avg_sq")):
                view[...] = state[name] if name in state else 0
                state[name] = view
            state.setdefault("step", 0)
            param.array = views[0]
            self.views.append(tuple(views))
            start += size

    def holds(self, params, states) -> bool:
        """Return whether every parameter and moment of the group is still its view here."""
        return len(params) == len(self.views) and all(
            p.array is views[0] and state.get("exp_avg") is views[1] and state.get("exp_avg_sq") is views[2]
            for p, state, views in zip(params, states, self.views)
        )
