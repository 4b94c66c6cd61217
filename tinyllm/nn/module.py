"""`Module` and `Parameter`: containers of weights with names, modes and a state dict."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from itertools import count

from tinyllm.autograd.tensor import Tensor
from tinyllm.backend import np
from tinyllm.errors import ShapeError
from tinyllm.ops import to_device


class Parameter(Tensor):
    """A tensor that is a trainable weight of a Module (requires grad by default)."""

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True):
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=requires_grad)
        if isinstance(data, Tensor):
            self._backend = data._backend


_HOOK_IDS = count()


class RemovableHandle:
    """What registering a hook returns: `.remove()` (or leaving a `with` block) unregisters it."""

    def __init__(self, hooks: dict, key: int) -> None:
        self._hooks, self._key = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self._key, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


class Module:
    """Base class of layers and models: holds Parameters and sub-Modules as attributes."""

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError("call Module.__init__() before assigning attributes")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __call__(self, *args, **kwargs):
        hooks = self.__dict__.get("_hooks")
        if not hooks:  # the common case: one dict lookup, no hook machinery
            return self.forward(*args, **kwargs)
        for kind, hook in list(hooks.values()):
            if kind == "pre":
                changed = hook(self, args)
                if changed is not None:
                    args = changed if isinstance(changed, tuple) else (changed,)
        output = self.forward(*args, **kwargs)
        for kind, hook in list(hooks.values()):
            if kind == "post":
                changed = hook(self, args, output)
                if changed is not None:
                    output = changed
        return output

    # -- hooks ----------------------------------------------------------------------------------
    def register_forward_pre_hook(self, hook: Callable) -> RemovableHandle:
        """Return a handle of `hook(module, args)`, called before each forward with the positional
        arguments; a return value other than None replaces them (a non-tuple becomes `(value,)`)."""
        return self._add_hook("pre", hook)

    def register_forward_hook(self, hook: Callable) -> RemovableHandle:
        """Return a handle of `hook(module, args, output)`, called after each forward; a return
        value other than None replaces the output."""
        return self._add_hook("post", hook)

    def _add_hook(self, kind: str, hook: Callable) -> RemovableHandle:
        # created at the first registration, so that modules without hooks carry nothing
        if "_hooks" not in self.__dict__:
            object.__setattr__(self, "_hooks", OrderedDict())
        key = next(_HOOK_IDS)
        self._hooks[key] = (kind, hook)
        return RemovableHandle(self._hooks, key)

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    # -- traversal ------------------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, module in self._modules.items():
            yield from module.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """Yield (dotted name, parameter), each shared parameter once (tied weights)."""
        seen = set()
        for module_name, module in self.named_modules():
            for name, param in module._parameters.items():
                if id(param) not in seen:
                    seen.add(id(param))
                    yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self) -> Iterator[Parameter]:
        for _, param in self.named_parameters():
            yield param

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    # -- modes and devices ----------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def to(self, device: str) -> Module:
        """Move every parameter to device, in place; tied parameters stay tied."""
        moved = {}
        for module in self.modules():
            for name, param in list(module._parameters.items()):
                if id(param) not in moved:
                    moved[id(param)] = Parameter(to_device(param.detach(), device), param.requires_grad)
                setattr(module, name, moved[id(param)])
        return self

    # -- state dict -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Return {dotted name: NumPy array} of every parameter, tied ones under their first name."""
        return {name: param.numpy() for name, param in self.named_parameters()}

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy arrays into the parameters, checking names and shapes."""
        params = dict(self.named_parameters())
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if strict and (missing or unexpected):
            raise KeyError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
        for name, param in params.items():
            if name not in state:
                continue
            value = np.asarray(state[name])
            if tuple(value.shape) != param.shape:
                raise ShapeError(
                    f"parameter {name}: checkpoint shape {tuple(value.shape)} != model shape {param.shape}"
                )
            param.data = param._backend.from_host(value.astype(param.numpy().dtype))

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, module in self._modules.items():
            child = repr(module).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        return "\n".join(lines) + ("\n)" if self._modules else ")")


class ModuleList(Module):
    """A list of sub-modules, registered under their index."""

    def __init__(self, modules=()) -> None:
        super().__init__()
        for module in modules:
            self.append(module)

    def append(self, module: Module) -> None:
        setattr(self, str(len(self._modules)), module)

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __iter__(self):
        return iter(self._modules.values())

    def __len__(self) -> int:
        return len(self._modules)


class Sequential(ModuleList):
    """Sub-modules applied one after another."""

    def forward(self, x):
        for module in self:
            x = module(x)
        return x
