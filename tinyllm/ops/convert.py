"""Making tensors: from data, filled, random; and moving them between dtypes and devices."""

from __future__ import annotations

import numbers

from tinyllm.autograd.function import Function
from tinyllm.autograd.tensor import Tensor
from tinyllm.backend import FLOAT_DTYPES, RANDOM, get_backend
from tinyllm.errors import DeviceError, DTypeError


def tensor(data, dtype=None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    """Return a new tensor holding `data` (Python floats become float32, ints int64)."""
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def as_tensor(value, like: Tensor) -> Tensor:
    """Return `value` as a tensor on like's device; a Python scalar takes like's dtype."""
    if isinstance(value, Tensor):
        return value
    backend = like._backend
    dtype = like.dtype
    if isinstance(value, float) and dtype not in FLOAT_DTYPES:
        dtype = "float32"
    if isinstance(value, (int, float, bool)):
        return Tensor._wrap(backend.asarray(value, dtype=dtype), backend, False, None)
    return Tensor(value, device=backend.name)


def raw_index(index, backend=None):
    """Return an indexing key for raw arrays: Tensors replaced by their arrays, lists by integer
    arrays, and a basic index closed with Ellipsis (the array API, unlike NumPy, wants an index
    to name every axis: `x[0]` of a matrix is written `x[0, ...]`)."""
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


def _filled(fill, shape, dtype, device, requires_grad):
    backend = get_backend(device)
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)
    array = backend.xp.full(shape, fill, dtype=backend.dtype(dtype))
    return Tensor._wrap(array, backend, False, None).requires_grad_(requires_grad)


def zeros(*shape, dtype: str = "float32", device: str | None = None, requires_grad: bool = False) -> Tensor:
    """Return a tensor of zeros of the given shape."""
    return _filled(0, shape, dtype, device, requires_grad)


def ones(*shape, dtype: str = "float32", device: str | None = None, requires_grad: bool = False) -> Tensor:
    """Return a tensor of ones of the given shape."""
    return _filled(1, shape, dtype, device, requires_grad)


def full(shape, fill_value, dtype: str = "float32", device: str | None = None) -> Tensor:
    """Return a tensor of the given shape filled with `fill_value`."""
    return _filled(fill_value, (shape,), dtype, device, False)


def zeros_like(t: Tensor) -> Tensor:
    return _filled(0, (t.shape,), t.dtype, t.device, False)


def ones_like(t: Tensor) -> Tensor:
    return _filled(1, (t.shape,), t.dtype, t.device, False)


def arange(
    start: int, stop: int | None = None, step: int = 1, dtype: str = "int64", device: str | None = None
) -> Tensor:
    """Return the integers start, start+step, ... below stop."""
    if stop is None:
        start, stop = 0, start
    backend = get_backend(device)
    return Tensor._wrap(backend.xp.arange(start, stop, step, dtype=backend.dtype(dtype)), backend, False, None)


def manual_seed(seed: int) -> None:
    """Seed the one random generator behind randn, rand, dropout and sampling."""
    RANDOM.seed(seed)


def randn(*shape, dtype: str = "float32", device: str | None = None, requires_grad: bool = False) -> Tensor:
    """Return a tensor of standard-normal samples."""
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)
    backend = get_backend(device)
    array = backend.from_host(RANDOM.normal(shape, dtype))
    return Tensor._wrap(array, backend, False, None).requires_grad_(requires_grad)


def rand(*shape, dtype: str = "float32", device: str | None = None, requires_grad: bool = False) -> Tensor:
    """Return a tensor of samples uniform on [0, 1)."""
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)
    backend = get_backend(device)
    array = backend.from_host(RANDOM.uniform(shape, dtype))
    return Tensor._wrap(array, backend, False, None).requires_grad_(requires_grad)


class AsType(Function):
    def forward(self, a, dtype):
        self.input_dtype = a.dtype
        return self.xp.astype(a, self.backend.dtype(dtype))

    def backward(self, grad):
        return self.xp.astype(grad, self.input_dtype)


def astype(t: Tensor, dtype: str) -> Tensor:
    """Return t converted to dtype; differentiable between float dtypes."""
    if t.requires_grad and dtype not in FLOAT_DTYPES:
        raise DTypeError(f"cannot cast a tensor that requires grad to non-float dtype {dtype}")
    return AsType.apply(t, dtype=dtype)


def to_device(t: Tensor, device: str) -> Tensor:
    """Return a copy of t on another device, as a new leaf keeping `requires_grad`."""
    target = get_backend(device)
    if target is t._backend:
        return t
    array = target.from_host(t._backend.to_host(t.detach().array))
    return Tensor._wrap(array, target, False, None).requires_grad_(t.requires_grad)
