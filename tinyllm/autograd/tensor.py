"""`Tensor`: an n-d array of some backend, plus what autograd needs (grad, grad_fn, requires_grad).

Arithmetic, reductions and shape methods are thin calls into `tinyllm.ops`, where each op's
forward and backward live. `backward()` walks the graph in topological order (see function.py).

Second backward: after `backward()` the arrays saved for it are freed, so a second `backward()`
through the same graph raises `GraphError`, unless the first call passed `retain_graph=True`;
then the second call adds its gradients to `.grad` again (gradients accumulate, as in PyTorch).
"""

from __future__ import annotations

from tinyllm.backend import FLOAT_DTYPES, Backend, backend_of, get_backend, np
from tinyllm.errors import DTypeError, GraphError, ShapeError


class Tensor:
    """An n-d array on a device that can record the operations applied to it."""

    __slots__ = (
        "data", "requires_grad", "grad", "grad_fn", "_backend", "_retains_grad", "_post_accumulate_hooks", "__weakref__"
    )  # fmt: skip
    __array_priority__ = 1000  # NumPy defers `ndarray + Tensor` to Tensor.__radd__

    def __init__(self, data, dtype=None, device: str | None = None, requires_grad: bool = False):
        backend, array = _to_array(data, dtype, device)
        self.data = array
        self._backend = backend
        self.grad = None
        self.grad_fn = None
        self._retains_grad = False
        self._post_accumulate_hooks = ()
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _wrap(array, backend: Backend, requires_grad: bool, grad_fn) -> Tensor:
        """Return a Tensor around a raw array without copying or checking (the op fast path)."""
        t = object.__new__(Tensor)
        t.data = array
        t._backend = backend
        t.requires_grad = requires_grad
        t.grad = None
        t.grad_fn = grad_fn
        t._retains_grad = False
        t._post_accumulate_hooks = ()
        return t

    # -- properties -----------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> str:
        """The dtype name: "float32", "float64", "int64", "bool", ... (compare with tl.float32)."""
        return self._backend.dtype_name(self.data)

    @property
    def device(self) -> str:
        return self._backend.name

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        n = 1
        for d in self.data.shape:
            n *= d
        return n

    def __len__(self) -> int:
        if self.ndim == 0:
            raise ShapeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
        return f"tensor({body}, dtype={self.dtype}, device={self.device!r}{grad})"

    # -- autograd -------------------------------------------------------------------------------
    def requires_grad_(self, flag: bool = True) -> Tensor:
        if flag and self.dtype not in FLOAT_DTYPES:
            raise DTypeError(f"only floating-point tensors can require grad, got dtype {self.dtype}")
        self.requires_grad = flag
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
            grad = self._backend.xp.ones(self.data.shape, dtype=self.data.dtype)
        else:
            grad = gradient.data if isinstance(gradient, Tensor) else self._backend.asarray(gradient)
            if tuple(grad.shape) != self.shape:
                raise ShapeError(f"backward(): gradient shape {tuple(grad.shape)} != tensor shape {self.shape}")
        from tinyllm.autograd.function import run_backward

        run_backward(self, grad, retain_graph=retain_graph)

    def _accumulate(self, grad) -> None:
        if grad.dtype != self.data.dtype:  # a float64 op downstream of a float32 leaf
            grad = self._backend.xp.astype(grad, self.data.dtype)
        if self.grad is None:
            self.grad = Tensor._wrap(self._backend.xp.asarray(grad, copy=True), self._backend, False, None)
        else:
            self.grad = Tensor._wrap(self.grad.data + grad, self._backend, False, None)

    def detach(self) -> Tensor:
        """Return a tensor sharing this data, cut from the graph."""
        return Tensor._wrap(self.data, self._backend, False, None)

    # -- conversion -----------------------------------------------------------------------------
    def numpy(self):
        """Return the data as a NumPy array on the host (a copy for device arrays)."""
        if self.requires_grad:
            return self._backend.to_host(self.detach().data)
        return self._backend.to_host(self.data)

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

    def __bool__(self) -> bool:
        return bool(self.item())

    def __hash__(self) -> int:
        return id(self)

    def to(self, device_or_dtype: str) -> Tensor:
        """Return this tensor on another device ("cpu", "cuda") or as another dtype ("float64")."""
        from tinyllm.backend.base import DTYPE_NAMES

        if str(device_or_dtype) in DTYPE_NAMES:
            return _ops.astype(self, str(device_or_dtype))
        return _ops.to_device(self, device_or_dtype)

    def float(self) -> Tensor:
        return self.to("float32")

    def double(self) -> Tensor:
        return self.to("float64")

    def long(self) -> Tensor:
        return self.to("int64")

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

    def __getitem__(self, index):
        return _ops.getitem(self, index)

    def __setitem__(self, index, value) -> None:
        """Write into the data in place; allowed only on tensors outside any graph."""
        if self.requires_grad or self.grad_fn is not None:
            raise GraphError("in-place assignment into a tensor that requires grad would break autograd")
        value = value.data if isinstance(value, Tensor) else value
        self.data[_ops.raw_index(index, self._backend)] = value

    # -- methods mirroring the functional ops ---------------------------------------------------
    def exp(self):
        return _ops.exp(self)

    def log(self):
        return _ops.log(self)

    def sqrt(self):
        return _ops.sqrt(self)

    def abs(self):
        return _ops.abs(self)

    def tanh(self):
        return _ops.tanh(self)

    def sigmoid(self):
        return _ops.sigmoid(self)

    def relu(self):
        return _ops.relu(self)

    def clip(self, min=None, max=None):  # noqa: A002 - PyTorch's names
        return _ops.clip(self, min, max)

    clamp = clip

    def sum(self, axis=None, keepdims: bool = False):
        return _ops.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims: bool = False):
        return _ops.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims: bool = False):
        return _ops.max(self, axis, keepdims)

    def var(self, axis=None, keepdims: bool = False, correction: int = 0):
        return _ops.var(self, axis, keepdims, correction)

    def argmax(self, axis=None, keepdims: bool = False):
        return _ops.argmax(self, axis, keepdims)

    def reshape(self, *shape):
        return _ops.reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)

    view = reshape

    def flatten(self, start: int = 0):
        return _ops.reshape(self, self.shape[:start] + (-1,))

    def transpose(self, axis0: int = -2, axis1: int = -1):
        return _ops.transpose(self, axis0, axis1)

    @property
    def T(self):  # noqa: N802 - NumPy's name
        return _ops.permute(self, tuple(reversed(range(self.ndim))))

    def permute(self, *axes):
        return _ops.permute(self, axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes)

    def expand(self, *shape):
        return _ops.expand(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)

    def squeeze(self, axis=None):
        return _ops.squeeze(self, axis)

    def unsqueeze(self, axis: int):
        return _ops.unsqueeze(self, axis)

    def split(self, split_size_or_sections, axis: int = 0):
        return _ops.split(self, split_size_or_sections, axis)

    def masked_fill(self, mask, value: float):
        return _ops.masked_fill(self, mask, value)

    def softmax(self, axis: int = -1):
        return _ops.softmax(self, axis)

    def log_softmax(self, axis: int = -1):
        return _ops.log_softmax(self, axis)

    def matmul(self, other):
        return _ops.matmul(self, other)


class _HookHandle:
    """What `register_post_accumulate_grad_hook` returns: `remove()` unregisters the hook."""

    def __init__(self, tensor: Tensor, hook) -> None:
        self.tensor, self.hook = tensor, hook

    def remove(self) -> None:
        self.tensor._post_accumulate_hooks = tuple(h for h in self.tensor._post_accumulate_hooks if h is not self.hook)


def _to_array(data, dtype, device):
    """Return (backend, array) for tl.tensor's arguments, with PyTorch's dtype defaults."""
    dtype = None if dtype is None else str(np.dtype(dtype)) if not isinstance(dtype, str) else dtype
    if isinstance(data, Tensor):
        data = data.data
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
    if source is None:
        host = np.asarray(data)
        if dtype is None and host.dtype == np.float64 and not isinstance(data, (np.ndarray, np.generic)):
            dtype = "float32"  # Python floats become float32, as in PyTorch
        if host.dtype.kind in "US O".replace(" ", ""):
            raise DTypeError(f"tensor() got data of dtype {host.dtype}; expected numbers or booleans")
        array = backend.from_host(host if dtype is None else host.astype(dtype))
    else:
        array = data if dtype is None else backend.xp.astype(data, backend.dtype(dtype))
    return backend, array


from tinyllm import ops as _ops  # noqa: E402  (Tensor's methods are thin calls into the op library)
