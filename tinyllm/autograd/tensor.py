"""`Tensor`: an n-d array of some backend, plus what autograd needs (grad, grad_fn, requires_grad).

Arithmetic, reductions and shape methods are thin calls into `tinyllm.ops`, where each op's
forward and backward live. `backward()` walks the graph in topological order (see function.py).

Second backward: after `backward()` the arrays saved for it are freed, so a second `backward()`
through the same graph raises `GraphError`, unless the first call passed `retain_graph=True`;
then the second call adds its gradients to `.grad` again (gradients accumulate, as in PyTorch).
"""

from __future__ import annotations

from tinyllm.autograd.dtypes import DTYPES, DType, device
from tinyllm.backend import FLOAT_DTYPES, Backend, backend_of, get_backend, np
from tinyllm.errors import DeviceError, DTypeError, GraphError, ShapeError


class Tensor:
    """An n-d array on a device that can record the operations applied to it."""

    __slots__ = (
        "array", "requires_grad", "grad", "grad_fn", "_backend", "_retains_grad", "_version", "_base",
        "_post_accumulate_hooks", "__weakref__",
    )  # fmt: skip
    __array_priority__ = 1000  # NumPy defers `ndarray + Tensor` to Tensor.__radd__

    def __init__(self, data, dtype=None, device: str | None = None, requires_grad: bool = False):
        backend, array = _to_array(data, dtype, device)
        self.array = array
        self._backend = backend
        self.grad = None
        self.grad_fn = None
        self._retains_grad = False
        self._version = 0
        self._base = None
        self._post_accumulate_hooks = ()
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _wrap(array, backend: Backend, requires_grad: bool, grad_fn) -> Tensor:
        """Return a Tensor around a raw array without copying or checking (the op fast path)."""
        t = object.__new__(Tensor)
        t.array = array
        t._backend = backend
        t.requires_grad = requires_grad
        t.grad = None
        t.grad_fn = grad_fn
        t._retains_grad = False
        t._version = 0
        t._base = None
        t._post_accumulate_hooks = ()
        return t

    # -- properties -----------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return tuple(self.array.shape)

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def dtype(self) -> DType:
        """The dtype, tl.float32, tl.int64, ...; equal to its name ("float32") as well."""
        return DTYPES[self._backend.dtype_name(self.array)]

    @property
    def device(self) -> device:
        """The device, tl.device("cpu"), ...; equal to its name ("cpu") as well."""
        return device(self._backend.name)

    @property
    def data(self) -> Tensor:
        """A tensor sharing this one's storage, outside the graph (PyTorch's `.data`).

        Writes through it are invisible to autograd's version counter, as in PyTorch; `.array`
        is the raw backend array.
        """
        return Tensor._wrap(self.array, self._backend, False, None)

    @data.setter
    def data(self, value: Tensor) -> None:
        if not isinstance(value, Tensor):
            raise DTypeError(f".data must be set to a Tensor, got {type(value).__name__}")
        if value._backend is not self._backend:
            raise DeviceError(f".data: a tensor on {value.device!r} cannot replace one on {self.device!r}")
        self.array = value.array

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def T(self) -> Tensor:  # noqa: N802 - PyTorch's name
        return _ops.shape.permuted(self, tuple(range(self.array.ndim - 1, -1, -1)))

    @property
    def mT(self) -> Tensor:  # noqa: N802 - PyTorch's name
        """The last two dims swapped (a batch of matrices transposed)."""
        return _ops.transpose(self, -2, -1)

    def size(self, dim: int | None = None):
        """Return the shape, or the size of one dim."""
        return self.shape if dim is None else self.shape[_ops.signature.normalize_dim(dim, self.ndim, "size")]

    def dim(self) -> int:
        return self.array.ndim

    def numel(self) -> int:
        n = 1
        for d in self.array.shape:
            n *= d
        return n

    def is_floating_point(self) -> bool:
        return self.dtype in FLOAT_DTYPES

    def element_size(self) -> int:
        """Return the bytes per element."""
        return self.dtype.itemsize

    def __len__(self) -> int:
        if self.ndim == 0:
            raise ShapeError("len() of a 0-d tensor")
        return self.array.shape[0]

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
        return f"tensor({body}, dtype={self.dtype}, device={str(self.device)!r}{grad})"

    # -- autograd -------------------------------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self.dtype not in FLOAT_DTYPES:
            raise DTypeError(f"only floating-point tensors can require grad, got dtype {self.dtype}")
        self.requires_grad = requires_grad
        return self

    def retain_grad(self) -> None:
        """Keep `.grad` on this non-leaf tensor after backward."""
        self._retains_grad = True

    def register_post_accumulate_grad_hook(self, hook) -> _HookHandle:
        """Return a handle whose `remove()` undoes this: call hook(self) each time backward has added
        this leaf's gradient into `.grad` (its gradient of that backward is then complete)."""
        if not self.is_leaf:
            raise GraphError("post-accumulate-grad hooks can only be registered on leaf tensors")
        self._post_accumulate_hooks = self._post_accumulate_hooks + (hook,)
        return _HookHandle(self, hook)

    def backward(self, gradient: Tensor | None = None, retain_graph: bool = False) -> None:
        """Accumulate d self / d leaf into every leaf's `.grad` (gradient required if non-scalar)."""
        if not self.requires_grad:
            raise GraphError("backward() on a tensor that does not require grad (no graph recorded)")
        if gradient is None:
            if self.numel() != 1:
                raise GraphError(
                    f"backward() on a non-scalar tensor of shape {self.shape} needs a gradient "
                    "argument of the same shape"
                )
            grad = self._backend.xp.ones(self.array.shape, dtype=self.array.dtype)
        else:
            grad = gradient.array if isinstance(gradient, Tensor) else self._backend.asarray(gradient)
            if tuple(grad.shape) != self.shape:
                raise ShapeError(f"backward(): gradient shape {tuple(grad.shape)} != tensor shape {self.shape}")
        from tinyllm.autograd.function import run_backward

        run_backward(self, grad, retain_graph=retain_graph)

    def _accumulate(self, grad) -> None:
        if grad.dtype != self.array.dtype:  # a float64 op downstream of a float32 leaf
            grad = self._backend.xp.astype(grad, self.array.dtype)
        if self.grad is None:
            self.grad = Tensor._wrap(self._backend.xp.asarray(grad, copy=True), self._backend, False, None)
        else:
            self.grad = Tensor._wrap(self.grad.array + grad, self._backend, False, None)

    def detach(self) -> Tensor:
        """Return a tensor sharing this storage (and its version counter), cut from the graph."""
        t = Tensor._wrap(self.array, self._backend, False, None)
        t._base = self if self._base is None else self._base
        return t

    # -- conversion -----------------------------------------------------------------------------
    def numpy(self):
        """Return the data as a NumPy array on the host (a copy for device arrays)."""
        return self._backend.to_host(self.array)

    def __array__(self, dtype=None, copy=None):
        """NumPy's view of the numbers: np.asarray(t) is an array of them, not of Tensors."""
        host = self._backend.to_host(self.array)
        return host if dtype is None else host.astype(dtype, copy=False)

    def __dlpack__(self, **kwargs):
        """Export the storage through DLPack (torch.from_dlpack(t), np.from_dlpack(t)), shared, not copied."""
        return self.array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()

    def tolist(self):
        return self.numpy().tolist()

    def item(self):
        """Return the value of a one-element tensor as a Python number."""
        if self.numel() != 1:
            raise ShapeError(f"item() needs a one-element tensor, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.dtype in FLOAT_DTYPES or self.numel() != 1:
            raise DTypeError(
                f"only a one-element integer tensor can be used as an index, got {self.dtype} {self.shape}"
            )
        return int(self.item())

    def __bool__(self) -> bool:
        return bool(self.item())

    def __hash__(self) -> int:
        return id(self)

    def to(self, *args, **kwargs) -> Tensor:
        """Return this tensor as another dtype and/or on another device: to(dtype), to(device),
        to(device, dtype), to(other) for other's dtype and device (self if nothing changes)."""
        return _ops.to(self, *args, **kwargs)

    def float(self) -> Tensor:
        return _ops.astype(self, "float32")

    def double(self) -> Tensor:
        return _ops.astype(self, "float64")

    def half(self) -> Tensor:
        return _ops.astype(self, "float16")

    def long(self) -> Tensor:
        return _ops.astype(self, "int64")

    def int(self) -> Tensor:
        return _ops.astype(self, "int32")

    def bool(self) -> Tensor:
        return _ops.astype(self, "bool")

    def type_as(self, other: Tensor) -> Tensor:
        return _ops.astype(self, other.dtype)

    def contiguous(self) -> Tensor:
        """Return self: every array here is laid out in C order when an op needs it."""
        return self

    def view_as(self, other: Tensor) -> Tensor:
        return _ops.reshape(self, other.shape)

    def expand_as(self, other: Tensor) -> Tensor:
        return _ops.expand(self, other.shape)

    def t(self) -> Tensor:
        """Return a 2-d tensor transposed (a 0-d or 1-d tensor as it is)."""
        if self.ndim > 2:
            raise ShapeError(f"t() needs a tensor of at most 2 dims, got shape {self.shape}; use transpose or mT")
        return _ops.transpose(self, 0, -1) if self.ndim == 2 else self

    def new_tensor(self, data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
        """Return a new tensor of data, with this tensor's dtype and device unless given."""
        return Tensor(data, dtype or self.dtype, device or self.device, requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
        return _ops.zeros(*size, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
        return _ops.ones(*size, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
        return _ops.full(
            size, fill_value, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad
        )

    def new_empty(self, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
        return self.new_zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)

    def where(self, condition: Tensor, other) -> Tensor:
        """Return self where condition holds, else other (torch's x.where(condition, y))."""
        return _ops.where(condition, self, other)

    # -- arithmetic -----------------------------------------------------------------------------
    def __add__(self, other):
        return _ops.add(self, other)

    def __radd__(self, other):
        return _ops.add(other, self)

    def __sub__(self, other):
        return _ops.sub(self, other)

    def __rsub__(self, other):
        return _ops.sub(other, self)

    def __mul__(self, other):
        return _ops.mul(self, other)

    def __rmul__(self, other):
        return _ops.mul(other, self)

    def __truediv__(self, other):
        return _ops.div(self, other)

    def __rtruediv__(self, other):
        return _ops.div(other, self)

    def __pow__(self, other):
        return _ops.pow(self, other)

    def __rpow__(self, other):
        return _ops.pow(other, self)

    def __matmul__(self, other):
        return _ops.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.matmul(other, self)

    def __neg__(self):
        return _ops.neg(self)

    def __eq__(self, other):
        return _ops.eq(self, other)

    def __ne__(self, other):
        return _ops.ne(self, other)

    def __lt__(self, other):
        return _ops.lt(self, other)

    def __le__(self, other):
        return _ops.le(self, other)

    def __gt__(self, other):
        return _ops.gt(self, other)

    def __ge__(self, other):
        return _ops.ge(self, other)

    def __invert__(self):
        return _ops.logical_not(self)

    def __getitem__(self, index):
        return _ops.getitem(self, index)

    def __setitem__(self, index, value) -> None:
        _ops.setitem(self, index, value)

    # in place: `x += y` changes x's storage, as in PyTorch (see ops/inplace.py for the rules)
    def __iadd__(self, other):
        return _ops.add_(self, other)

    def __isub__(self, other):
        return _ops.sub_(self, other)

    def __imul__(self, other):
        return _ops.mul_(self, other)

    def __itruediv__(self, other):
        return _ops.div_(self, other)


class _HookHandle:
    """What `register_post_accumulate_grad_hook` returns: `remove()` unregisters the hook."""

    def __init__(self, tensor: Tensor, hook) -> None:
        self.tensor, self.hook = tensor, hook

    def remove(self) -> None:
        self.tensor._post_accumulate_hooks = tuple(h for h in self.tensor._post_accumulate_hooks if h is not self.hook)


def _to_array(data, dtype, device, copy: bool = True):
    """Return (backend, array) for tl.tensor's arguments, with PyTorch's dtype defaults: Python
    floats become float32, ints int64; a copy of the data unless copy=False (tl.as_tensor)."""
    dtype = None if dtype is None else str(np.dtype(dtype)) if not isinstance(dtype, str) else dtype
    if isinstance(data, Tensor):
        data = data.array
    if device is not None:
        backend = get_backend(device)
    else:
        try:
            backend = backend_of(data)
        except Exception:  # noqa: BLE001 - plain Python data goes to the default device
            backend = get_backend(None)
    try:
        source = backend_of(data)
    except Exception:  # noqa: BLE001
        source = None
    if source is not None and source is not backend:
        data = source.to_host(data)
        source = None
    if source is not None:
        array = data if dtype is None else backend.xp.astype(data, backend.dtype(dtype), copy=False)
        return backend, backend.xp.asarray(array, copy=True) if copy and array is data else array
    try:
        host = np.array(data, copy=copy or None)
    except ValueError as error:  # NumPy 2 refuses ragged nested lists
        raise ShapeError(f"tensor(): the nested sequences do not form a rectangular array ({error})") from None
    if dtype is None and host.dtype == np.float64 and not isinstance(data, (np.ndarray, np.generic)):
        dtype = "float32"  # Python floats become float32, as in PyTorch
    if host.dtype.kind in "USO":
        raise DTypeError(f"tensor() got data of dtype {host.dtype}; expected numbers or booleans")
    return backend, backend.from_host(host if dtype is None else host.astype(dtype, copy=False))


# The methods that are an op with the tensor as its first argument: `x.sum(dim=1)` is
# `ops.sum(x, dim=1)`. Each name is the op of that name unless mapped to another below.
_METHOD_OPS = (
    "abs add add_ amax amin argmax argmin argsort bmm chunk clamp_ clip clip_ clone copy_ cos cumsum div div_ "
    "exp expand fill_ flatten gather log log_softmax logsumexp masked_fill masked_fill_ matmul max maximum mean "
    "min minimum mm mul mul_ norm normal_ permute pow relu repeat reshape sigmoid sin softmax sort split sqrt "
    "squeeze std sub sub_ sum take_along_dim tanh topk transpose tril triu unbind unflatten uniform_ unsqueeze "
    "var zero_"
).split()
_METHOD_ALIASES = {"clamp": "clip", "view": "reshape", "multiply": "mul", "divide": "div", "subtract": "sub"}


def install_methods(ops) -> None:
    """Give Tensor its op methods (the table above); the op library calls this once it is loaded,
    whichever of the two modules a program imports first."""
    for name in _METHOD_OPS:
        setattr(Tensor, name, getattr(ops, name))
    for name, op in _METHOD_ALIASES.items():
        setattr(Tensor, name, getattr(ops, op))


from tinyllm import ops as _ops  # noqa: E402  (Tensor's operators are thin calls into the op library)
