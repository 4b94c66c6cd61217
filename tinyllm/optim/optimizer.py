"""`Optimizer`: parameter groups, per-parameter state, and a state dict that checkpoints can store.

Updates work on raw backend arrays (`param.array`, `param.grad.array`) outside autograd. Each
parameter's state (moments, its step count) is keyed by the parameter's index across all groups,
as in PyTorch, so a state dict needs no object identities and maps onto a rebuilt model.
"""

from __future__ import annotations

from tinyllm.backend import np
from tinyllm.errors import CheckpointError, ConfigError


class Optimizer:
    """Base class: subclasses implement `_update(param, grad, state, group)` on raw arrays."""

    def __init__(self, params, defaults: dict) -> None:
        params = list(params)
        if not params:
            raise ConfigError("an optimizer needs at least one parameter, got none")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = dict(defaults)
        self.param_groups = [{**self.defaults, **group, "params": list(group["params"])} for group in groups]
        self.state: dict[int, dict] = {}

    def _indexed(self):
        """Yield (index, param, group) for every parameter, indices running across the groups."""
        index = 0
        for group in self.param_groups:
            for param in group["params"]:
                yield index, param, group
                index += 1

    def zero_grad(self) -> None:
        for _, param, _ in self._indexed():
            param.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient, once."""
        for index, param, group in self._indexed():
            if param.grad is not None:
                self._update(param, param.grad.array, self.state.setdefault(index, {}), group)

    def _update(self, param, grad, state: dict, group: dict) -> None:
        raise NotImplementedError

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
