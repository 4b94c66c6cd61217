"""Making tensors (from data, filled, ranges) and moving them between dtypes and devices."""

from __future__ import annotations

import math
import numbers

from tinyllm.autograd.function import Function
from tinyllm.autograd.tensor import Tensor, _to_array
from tinyllm.backend import FLOAT_DTYPES, get_backend, np
from tinyllm.backend.base import DTYPE_NAMES
from tinyllm.errors import ArgumentError, DeviceError, DTypeError
from tinyllm.validate import check_float, check_int


def dtype_name(dtype, default: str | None = None) -> str | None:
    """Return the dtype name ("float32", ...) of a dtype given as a name, tl.float32, a NumPy
    dtype or a torch dtype; `default` for None."""
    if dtype is None:
        return default
    name = getattr(dtype, "name", None) if not isinstance(dtype, str) else dtype
    if name is None:  # a NumPy scalar type (np.float32) or a torch dtype (torch.float32)
        name = str(dtype).removeprefix("torch.") if str(dtype).startswith("torch.") else np.dtype(dtype).name
    name = _DTYPE_ALIASES.get(name, name)
    if name not in DTYPE_NAMES:
        raise DTypeError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPE_NAMES)}")
    return name


_DTYPE_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "long": "int64", "int": "int32"}


def shape_arg(size: tuple) -> tuple:
    """Return the shape of `f(2, 3)` and `f((2, 3))` alike, as PyTorch's factories take both."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(check_int("size", n, minimum=0) for n in size)


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Return a new tensor holding a copy of `data` (Python floats become float32, ints int64)."""
    return Tensor(data, dtype=dtype_name(dtype), device=_device_name(device), requires_grad=requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Return data as a tensor, sharing its memory where no conversion is needed (a tensor of
    that dtype and device is returned as it is)."""
    dtype, device = dtype_name(dtype), _device_name(device)
    if isinstance(data, Tensor):
        return to(data, device=device, dtype=dtype)
    backend, array = _to_array(data, dtype, device, copy=False)
    return Tensor._wrap(array, backend, False, None)


def from_numpy(array) -> Tensor:
    """Return a tensor on the CPU sharing the NumPy array's memory."""
    if not isinstance(array, np.ndarray):
        raise DTypeError(f"from_numpy() needs a NumPy array, got {type(array).__name__}")
    return as_tensor(array, device="cpu")


_DLPACK_DEVICES = {1: "cpu", 2: "cuda"}  # DLPack's kDLCPU and kDLCUDA


def from_dlpack(array) -> Tensor:
    """Return a tensor sharing the memory of any DLPack array (NumPy, CuPy, torch) on the CPU or a GPU."""
    if not hasattr(array, "__dlpack_device__"):
        raise DTypeError(f"from_dlpack() needs an object with __dlpack__, got {type(array).__name__}")
    kind = array.__dlpack_device__()[0]
    if kind not in _DLPACK_DEVICES:
        raise DeviceError(f"from_dlpack(): DLPack device type {kind} has no tinyllm device")
    backend = get_backend(_DLPACK_DEVICES[kind])
    return Tensor._wrap(backend.xp.from_dlpack(array), backend, False, None)


def scalar_like(value, like: Tensor) -> Tensor:
    """Return `value` as a tensor on like's device; a Python scalar takes like's dtype (a float
    beside an integer tensor becomes float32)."""
    if isinstance(value, Tensor):
        return value
    backend = like._backend
    dtype = like.array.dtype
    if isinstance(value, float) and backend.dtype_name(like.array) not in FLOAT_DTYPES:
        dtype = backend.dtype("float32")
    if isinstance(value, (int, float, bool)):  # the native dtype: NumPy parses a name each call
        return Tensor._wrap(backend.xp.asarray(value, dtype=dtype), backend, False, None)
    return Tensor(value, device=backend.name)


def raw_index(index, backend=None):
    """Return an indexing key for raw arrays: Tensors replaced by their arrays, lists by integer
    arrays, and a basic index closed with Ellipsis (the array API, unlike NumPy, wants an index
    to name every axis: `x[0]` of a matrix is written `x[0, ...]`)."""
    if type(index) is slice or type(index) is int:  # x[1:3], x[0]: the common keys, at once
        return index, Ellipsis
    parts = tuple([_raw_index_part(part, backend) for part in (index if isinstance(index, tuple) else (index,))])
    for part in parts:
        if part is Ellipsis or hasattr(part, "shape"):
            return parts if isinstance(index, tuple) else parts[0]
    return parts + (Ellipsis,)


def _raw_index_part(part, backend):
    if isinstance(part, (int, slice)) or part is None or part is Ellipsis:
        return part
    if isinstance(part, Tensor):
        if backend is not None and part._backend is not backend:
            raise DeviceError(f"an index tensor on device {part.device!r} cannot index a tensor on {backend.name!r}")
        return part.array
    if isinstance(part, list):
        return (backend or get_backend(None)).asarray(part)
    if isinstance(part, numbers.Integral):
        return int(part)  # NumPy integers, which other backends do not take as indices
    return part


def _device_name(device) -> str | None:
    return None if device is None else str(getattr(device, "type", device))


def _filled(fill, size, dtype, device, requires_grad: bool, default_dtype: str = "float32") -> Tensor:
    backend = get_backend(_device_name(device))
    array = backend.xp.full(shape_arg(size), fill, dtype=backend.dtype(dtype_name(dtype, default_dtype)))
    return Tensor._wrap(array, backend, False, None).requires_grad_(requires_grad)


def _fill_dtype(fill) -> str:
    """PyTorch's dtype of full(): bool for a bool, int64 for an int, float32 for a float."""
    return "bool" if isinstance(fill, bool) else "int64" if isinstance(fill, numbers.Integral) else "float32"


def zeros(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Return a tensor of zeros of the given shape (float32 unless dtype)."""
    return _filled(0, size, dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Return a tensor of ones of the given shape (float32 unless dtype)."""
    return _filled(1, size, dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Return a tensor of the given shape, its values unspecified (zeros here)."""
    return _filled(0, size, dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Return a tensor of the given shape filled with `fill_value` (its dtype from the value unless dtype)."""
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    return _filled(fill_value, (size,), dtype, device, requires_grad, _fill_dtype(fill_value))


def zeros_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _filled(0, (t.shape,), dtype or t.dtype, device or t.device, requires_grad)


def ones_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _filled(1, (t.shape,), dtype or t.dtype, device or t.device, requires_grad)


def empty_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return zeros_like(t, dtype, device, requires_grad)


def full_like(t: Tensor, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _filled(fill_value, (t.shape,), dtype or t.dtype, device or t.device, requires_grad)


def eye(n: int, m: int | None = None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Return the (n, m) matrix with ones on the diagonal (m = n by default)."""
    backend = get_backend(_device_name(device))
    n = check_int("n", n, minimum=0)
    m = n if m is None else check_int("m", m, minimum=0)
    array = backend.xp.eye(n, m, dtype=backend.dtype(dtype_name(dtype, "float32")))
    return Tensor._wrap(array, backend, False, None).requires_grad_(requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Return start, start+step, ... below end: int64 when every argument is an integer, else
    float32 (PyTorch's rule; `arange(0, 1, 0.25)` is [0, 0.25, 0.5, 0.75])."""
    if end is None:
        start, end = 0, start
    bounds = [b.item() if isinstance(b, Tensor) else b for b in (start, end, step)]
    for name, value in zip(("start", "end", "step"), bounds):
        check_float(name, value)
    if bounds[2] == 0:
        raise ArgumentError("arange: step must not be zero")
    integral = all(isinstance(b, numbers.Integral) and not isinstance(b, bool) for b in bounds)
    name = dtype_name(dtype, "int64" if integral else "float32")
    backend = get_backend(_device_name(device))
    # counted in float64 on the host, then cast: the length and the values do not depend on the dtype
    count = max(math.ceil((bounds[1] - bounds[0]) / bounds[2]), 0)
    host = bounds[0] + np.arange(count, dtype=np.float64 if not integral else np.int64) * bounds[2]
    return Tensor._wrap(backend.from_host(host.astype(name)), backend, False, None).requires_grad_(requires_grad)


def linspace(start, end, steps: int, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Return `steps` evenly spaced values from start to end, both included."""
    steps = check_int("steps", steps, minimum=0)
    host = np.linspace(check_float("start", start), check_float("end", end), steps)
    backend = get_backend(_device_name(device))
    array = backend.from_host(host.astype(dtype_name(dtype, "float32")))
    return Tensor._wrap(array, backend, False, None).requires_grad_(requires_grad)


class AsType(Function):
    def forward(self, a, dtype):
        self.input_dtype = a.dtype
        return self.xp.astype(a, self.backend.dtype(dtype))

    def backward(self, grad):
        return self.xp.astype(grad, self.input_dtype)


def astype(t: Tensor, dtype) -> Tensor:
    """Return t converted to dtype (t itself if it has it); differentiable between float dtypes.

    A float tensor that requires grad cast to an integer or bool dtype gives a constant, as in PyTorch.
    """
    dtype = dtype_name(dtype)
    if dtype == t.dtype:
        return t
    if t.requires_grad and dtype not in FLOAT_DTYPES:
        return AsType.apply(t.detach(), dtype=dtype)
    return AsType.apply(t, dtype=dtype)


def to(t: Tensor, *args, dtype=None, device=None, copy: bool = False) -> Tensor:
    """Return t as another dtype and/or on another device: to(dtype), to(device), to(device,
    dtype), to(other tensor); t itself when nothing changes (unless copy)."""
    for arg in args:
        if isinstance(arg, Tensor):
            dtype, device = arg.dtype, arg.device
        elif _is_dtype(arg):
            dtype = arg
        else:
            device = arg
    out = t if device is None else to_device(t, _device_name(device))
    out = out if dtype is None else astype(out, dtype)
    return clone(out) if copy and out is t else out


def _is_dtype(value) -> bool:
    try:
        dtype_name(value)
    except (DTypeError, TypeError):
        return False
    return True


class Clone(Function):
    def forward(self, a):
        return self.xp.asarray(a, copy=True)

    def backward(self, grad):
        return grad


def clone(t: Tensor) -> Tensor:
    """Return a copy of t with its own storage; the gradient flows back to t."""
    return Clone.apply(t)


def to_device(t: Tensor, device) -> Tensor:
    """Return a copy of t on another device, as a new leaf keeping `requires_grad`."""
    target = get_backend(_device_name(device))
    if target is t._backend:
        return t
    array = target.from_host(t._backend.to_host(t.detach().array))
    return Tensor._wrap(array, target, False, None).requires_grad_(t.requires_grad)
