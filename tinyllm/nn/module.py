"""`Module` and `Parameter`: containers of weights and buffers with names, modes and a state dict;
and the containers `Sequential`, `ModuleList`, `ModuleDict`.

A Module keeps three registries, filled by plain attribute assignment as in PyTorch:
Parameters (trained), buffers (tensors saved with the model but not trained, such as a
positional table) and sub-Modules. Assigning one Parameter to two attributes ties them: the
parameter is listed once by `parameters()` and saved once by `state_dict()`, under its first
name, while `load_state_dict` accepts it under any of its names (a PyTorch state dict of a tied
model lists it under every name).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from itertools import count
from typing import NamedTuple

from tinyllm.autograd.grad_mode import no_grad
from tinyllm.autograd.tensor import Tensor
from tinyllm.backend import FLOAT_DTYPES, np
from tinyllm.backend.base import DTYPE_NAMES
from tinyllm.errors import ArgumentError, CheckpointError, ShapeError


class Parameter(Tensor):
    """A tensor that is a trainable weight of a Module (requires grad by default)."""

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = np.zeros((0,), dtype=np.float32)
        super().__init__(data.array if isinstance(data, Tensor) else data, requires_grad=requires_grad)
        if isinstance(data, Tensor):
            self._backend = data._backend


class IncompatibleKeys(NamedTuple):
    """What `load_state_dict` did not match: names the model has but the state lacks, and back."""

    missing_keys: list
    unexpected_keys: list


def _check_name(name, kind: str) -> str:
    if not isinstance(name, str) or not name or "." in name:
        raise ArgumentError(f"{kind} name must be a non-empty string without '.', got {name!r}")
    return name


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
    """Base class of layers and models: holds Parameters, buffers and sub-Modules as attributes."""

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError("call Module.__init__() before assigning attributes")
        if isinstance(value, Parameter):
            self._forget(name)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._forget(name)
            self._modules[name] = value
        elif name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise ArgumentError(f"buffer {name!r} can only be set to a Tensor or None, got {type(value).__name__}")
            self._buffers[name] = value
        elif name in self._parameters and isinstance(value, Tensor):
            raise ArgumentError(
                f"cannot assign a plain Tensor to parameter {name!r}: wrap it in nn.Parameter, "
                "or register it with register_buffer"
            )
        else:
            self._forget(name)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._forget(name)
        object.__delattr__(self, name)

    def _forget(self, name: str) -> None:
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        self._buffers.pop(name, None)
        self._non_persistent_buffers.discard(name)

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

    # -- registering ----------------------------------------------------------------------------
    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Keep tensor as attribute `name`: moved by `to()`, saved by `state_dict()` if
        persistent, never trained."""
        _check_name(name, "buffer")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise ArgumentError(f"register_buffer({name!r}) needs a Tensor or None, got {type(tensor).__name__}")
        if name in self.__dict__ and name not in self._buffers:
            raise ArgumentError(f"attribute {name!r} already exists; a buffer needs a new name")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)
        object.__setattr__(self, name, tensor)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Set attribute `name` to param (None declares an absent optional weight, like a bias)."""
        _check_name(name, "parameter")
        if param is not None and not isinstance(param, Parameter):
            raise ArgumentError(f"register_parameter({name!r}) needs an nn.Parameter or None")
        setattr(self, name, param)

    def add_module(self, name: str, module: Module | None) -> None:
        """Set attribute `name` to a sub-module."""
        _check_name(name, "module")
        if module is not None and not isinstance(module, Module):
            raise ArgumentError(f"add_module({name!r}) needs a Module, got {type(module).__name__}")
        setattr(self, name, module)

    register_module = add_module

    # -- traversal ------------------------------------------------------------------------------
    def named_modules(self, memo: set | None = None, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """Yield (dotted name, module) for this module and every descendant, each once."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                yield from module.named_modules(memo, f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Yield (name, module) for the direct sub-modules."""
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator[Module]:
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry: str, prefix: str, recurse: bool, remove_duplicate: bool = True):
        seen = set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{module_name}.{name}" if module_name else name), value

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """Yield (dotted name, parameter), each shared parameter once (tied weights)."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        """Yield (dotted name, buffer) for every buffer that is set."""
        yield from self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call fn on every sub-module (children first), then on self; return self."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # -- gradients ------------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient (set_to_none) or fill it with zeros."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                with no_grad():
                    p.grad.zero_()

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Turn gradient recording of every parameter on or off (freezing); return self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    # -- modes, dtypes and devices --------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def _apply(self, fn: Callable[[Tensor], Tensor]) -> Module:
        """Convert every parameter and buffer t (and its gradient) to fn(t) in place: the same
        Parameter objects stay, so ties and optimizers built before hold; return self."""
        done: set[int] = set()
        with no_grad():
            for module in self.modules():
                for tensor in (*module._parameters.values(), *module._buffers.values()):
                    if tensor is None or id(tensor) in done:
                        continue
                    done.add(id(tensor))
                    _replace_storage(tensor, fn(tensor.detach()))
                    if tensor.grad is not None:
                        _replace_storage(tensor.grad, fn(tensor.grad))
        return self

    def to(self, *args, **kwargs) -> Module:
        """Move every parameter and buffer to a device and/or cast the floating ones to a dtype:
        `to("cuda")`, `to(tl.float64)`, `to(device=..., dtype=...)`, `to(tensor)`; return self."""
        device, dtype = _device_and_dtype(args, kwargs)

        def convert(t: Tensor) -> Tensor:
            if device is not None:
                t = t.to(device)
            if dtype is not None and t.dtype in FLOAT_DTYPES:
                t = t.to(dtype)
            return t

        return self._apply(convert)

    def float(self) -> Module:
        return self.to("float32")

    def double(self) -> Module:
        return self.to("float64")

    def half(self) -> Module:
        return self.to("float16")

    # -- state dict -----------------------------------------------------------------------------
    def _state_slots(self) -> dict[str, tuple[Module, str, Tensor]]:
        """Return {dotted name: (owning module, attribute, tensor)} of every parameter and
        persistent buffer under every name it has (a tied parameter appears more than once)."""
        slots = {}
        for module_name, module in self.named_modules():
            dotted = f"{module_name}." if module_name else ""
            for name, param in module._parameters.items():
                if param is not None:
                    slots[dotted + name] = (module, name, param)
            for name, buffer in module._buffers.items():
                if buffer is not None and name not in module._non_persistent_buffers:
                    slots[dotted + name] = (module, name, buffer)
        return slots

    def state_dict(self) -> OrderedDict:
        """Return {dotted name: NumPy array} of every parameter and persistent buffer; a tied
        parameter under its first name only."""
        state, seen = OrderedDict(), set()
        for name, (_, _, tensor) in self._state_slots().items():
            if id(tensor) not in seen:
                seen.add(id(tensor))
                state[name] = tensor.numpy().copy()
        return state

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> IncompatibleKeys:
        """Copy arrays (NumPy, tinyllm or PyTorch tensors) into the parameters and buffers, in
        place, checking names and shapes; return the missing and unexpected keys.

        With strict (the default), any missing or unexpected key raises CheckpointError.
        """
        slots = self._state_slots()
        names_of: dict[int, list[str]] = {}
        for name, (_, _, tensor) in slots.items():
            names_of.setdefault(id(tensor), []).append(name)
        missing = [names[0] for names in names_of.values() if not any(n in state_dict for n in names)]
        unexpected = [name for name in state_dict if name not in slots]
        if strict and (missing or unexpected):
            raise CheckpointError(f"state dict does not fit the model: missing {missing}, unexpected {unexpected}")
        for name, value in state_dict.items():
            if name not in slots:
                continue
            _, _, tensor = slots[name]
            host = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
            if tuple(host.shape) != tensor.shape:
                raise ShapeError(f"{name}: state dict shape {tuple(host.shape)} != model shape {tensor.shape}")
            with no_grad():
                tensor.copy_(Tensor(host))
        return IncompatibleKeys(missing, unexpected)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, module in self._modules.items():
            child = repr(module).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        return "\n".join(lines) + ("\n)" if self._modules else ")")


def _replace_storage(tensor: Tensor, new: Tensor) -> None:
    """Make tensor hold new's array, on new's device (the in-place half of Module.to)."""
    tensor.array, tensor._backend = new.array, new._backend


def _dtype_name(value) -> str | None:
    """Return the dtype name of a dtype given as a name or a dtype object, else None."""
    text = str(value).rpartition(".")[2]
    return text if text in DTYPE_NAMES else None


def _device_and_dtype(args: tuple, kwargs: dict) -> tuple:
    """Return (device, dtype) from the arguments of `Module.to`, either possibly None."""
    device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    kwargs.pop("non_blocking", None)
    if kwargs:
        raise ArgumentError(f"Module.to() does not take {', '.join(sorted(kwargs))}")
    for arg in args:
        if isinstance(arg, Tensor):
            device, dtype = arg.device, arg.dtype
        elif _dtype_name(arg) is not None:
            dtype = arg
        else:
            device = arg
    return device, dtype


def clones(module: Module, n: int) -> list[Module]:
    """Return n independent deep copies of module (same initial weights), on its backends."""
    memo = {}
    for tensor in (*module.parameters(), *module.buffers()):
        memo[id(tensor._backend)] = tensor._backend  # a backend is shared, never copied
    return [copy.deepcopy(module, dict(memo)) for _ in range(n)]


class Sequential(Module):
    """Sub-modules applied one after another: `Sequential(a, b, c)` or
    `Sequential(OrderedDict(name=module, ...))`."""

    def __init__(self, *modules) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for index, module in enumerate(modules):
                self.add_module(str(index), module)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(OrderedDict(list(self._modules.items())[index]))
        return list(self._modules.values())[index]

    def __setitem__(self, index: int, module: Module) -> None:
        setattr(self, list(self._modules)[index], module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self._modules)), module)
        return self

    def forward(self, x):
        for module in self:
            x = module(x)
        return x


class ModuleList(Module):
    """A list of sub-modules, registered under their index."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        items = list(self._modules.values())
        items.insert(index, module)
        self._renumber(items)

    def _renumber(self, items: list) -> None:
        for name in list(self._modules):
            delattr(self, name)
        for i, module in enumerate(items):
            self.add_module(str(i), module)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ModuleList(list(self._modules.values())[index])
        return list(self._modules.values())[index]

    def __setitem__(self, index: int, module: Module) -> None:
        setattr(self, list(self._modules)[index], module)

    def __delitem__(self, index) -> None:
        items = list(self._modules.values())
        del items[index]
        self._renumber(items)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __len__(self) -> int:
        return len(self._modules)

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)


class ModuleDict(Module):
    """A dict of sub-modules, registered under their keys (and reachable as attributes)."""

    def __init__(self, modules: dict | Iterable | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        delattr(self, key)

    def __contains__(self, key: str) -> bool:
        return key in self._modules

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def pop(self, key: str) -> Module:
        module = self._modules[key]
        delattr(self, key)
        return module

    def update(self, modules) -> None:
        for key, module in modules.items() if hasattr(modules, "items") else modules:
            self.add_module(key, module)
