"""`Optimizer`: parameter groups, per-parameter state, and a state dict that checkpoints can store.

The constructor takes PyTorch's forms: an iterable of parameters, or of groups (dicts with
"params" and any hyper-parameters that differ from the defaults). Updates work on raw backend
arrays (`param.array`, `param.grad.array`) outside autograd. Each parameter's state (moments, its
step count) is keyed by the parameter's index across all groups, as in PyTorch's state dict, so a
state dict needs no object identities and maps onto a rebuilt model.
"""

from __future__ import annotations

from tinyllm.autograd.grad_mode import enable_grad, no_grad
from tinyllm.autograd.tensor import Tensor
from tinyllm.backend import np
from tinyllm.errors import ArgumentError, CheckpointError, ConfigError, UnsupportedError
from tinyllm.validate import check_float


class Optimizer:
    """Base class: subclasses implement `_update(param, grad, state, group)` on raw arrays and
    `_check_group(group)` for their hyper-parameters."""

    def __init__(self, params, defaults: dict) -> None:
        if isinstance(params, Tensor):
            raise ArgumentError("params must be an iterable of Tensors or of dicts, got a single Tensor")
        params = list(params)
        if not params:
            raise ConfigError("an optimizer needs at least one parameter, got none")
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        self.state: dict[int, dict] = {}
        for group in params if isinstance(params[0], dict) else [{"params": params}]:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict) -> None:
        """Append a group of parameters, filling the hyper-parameters it does not set from the defaults."""
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        if any(id(p) in seen for p in params) or len({id(p) for p in params}) != len(params):
            raise ArgumentError("some parameters appear in more than one parameter group (or twice in one)")
        group = {**self.defaults, **param_group, "params": params}
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group: dict) -> None:
        check_float("lr", group["lr"], minimum=0.0)
        for name in ("capturable", "differentiable"):
            if group.get(name):
                raise UnsupportedError(f"{type(self).__name__} does not support the argument {name!r}")

    def _indexed(self):
        """Yield (index, param, group) for every parameter, indices running across the groups."""
        index = 0
        for group in self.param_groups:
            for param in group["params"]:
                yield index, param, group
                index += 1

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every gradient (set_to_none) or fill it with zeros."""
        for _, param, _ in self._indexed():
            if set_to_none or param.grad is None:
                param.grad = None
            else:
                with no_grad():
                    param.grad.zero_()

    def step(self, closure=None):
        """Update every parameter that has a gradient, once; return closure() if given (it is
        called first, with gradients enabled, to recompute the loss)."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        first = 0  # the index of the group's first parameter
        for group in self.param_groups:
            if not self._update_group(group, first):
                for index, param in enumerate(group["params"], first):
                    if param.grad is not None:
                        grad = param.grad.array
                        if group.get("maximize"):
                            grad = -grad
                        self._update(param, grad, self.state.setdefault(index, {}), group)
            first += len(group["params"])
        return loss

    def _update(self, param, grad, state: dict, group: dict) -> None:
        raise NotImplementedError

    def _update_group(self, group: dict, first: int) -> bool:
        """Update the whole group at once and return True, or return False to have `_update`
        called for each parameter; `first` is the index of the group's first parameter."""
        return False

    # -- state dict -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Return {"param_groups": hyper-parameters, "state": {index: {name: host array or number}}}."""
        groups, index = [], 0
        for group in self.param_groups:
            count = len(group["params"])
            groups.append(
                {**{k: v for k, v in group.items() if k != "params"}, "params": list(range(index, index + count))}
            )
            index += count
        state = {}
        for i, param_state in self.state.items():
            state[str(i)] = {
                name: value if isinstance(value, (int, float)) else np.array(_to_host(value), copy=True)
                for name, value in param_state.items()
            }
        return {"param_groups": groups, "state": state}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyper-parameters and state, checking group sizes and moment shapes."""
        groups = state_dict["param_groups"]
        sizes = [len(g["params"]) for g in self.param_groups]
        if [len(g["params"]) for g in groups] != sizes:
            raise CheckpointError(
                f"optimizer state has groups of sizes {[len(g['params']) for g in groups]}, the model gives {sizes}"
            )
        params = {index: param for index, param, _ in self._indexed()}
        restored = {}
        for key, param_state in state_dict["state"].items():
            param = params.get(int(key))
            if param is None:
                raise CheckpointError(f"optimizer state names parameter {key}, but there are only {len(params)}")
            restored[int(key)] = {}
            for name, value in param_state.items():
                if isinstance(value, (int, float)):
                    restored[int(key)][name] = value
                    continue
                if tuple(value.shape) != param.shape:
                    raise CheckpointError(
                        f"optimizer state {name} of parameter {key} has shape {tuple(value.shape)}, "
                        f"the parameter has {param.shape}"
                    )
                restored[int(key)][name] = param._backend.from_host(np.asarray(value, dtype=param.numpy().dtype))
        for group, saved in zip(self.param_groups, groups):
            group.update({k: v for k, v in saved.items() if k != "params"})
        self.state = restored


def _to_host(array):
    from tinyllm.backend import backend_of

    return backend_of(array).to_host(array)
