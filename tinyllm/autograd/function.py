"""`Function`, the unit of autograd: an op's forward and backward on raw arrays, side by side.

A subclass implements `forward(self, *arrays, **params) -> array` and
`backward(self, grad) -> array | tuple of arrays` (one gradient per input, None where an input
needs none). Inside both, `self.xp` is the array namespace of the inputs' backend. Whatever
`forward` stores on `self` for backward is dropped once backward has run.

Gradients of broadcast inputs are reduced to the input's shape here, in `sum_to`, once for all
ops: an op's backward may return a gradient of the broadcast shape.

In-place writes and the version counter: `Writes.count` is a clock that every in-place write into
a tensor's storage advances, stamping the tensor (the storage's owner, `t._base` for a view) with
it in `t._version`. A graph node remembers the clock when it was made; before its backward runs,
an input whose storage was written since, or a saved output that was overwritten, is a GraphError
instead of a wrong gradient. Nothing is checked while no write happened after the node was made.
"""

from __future__ import annotations

from tinyllm.autograd.grad_mode import _GradMode
from tinyllm.errors import DeviceError, GraphError


class Writes:
    """The clock of in-place writes (see the module docstring)."""

    count = 0


class Function:
    """Base class of every differentiable op."""

    xp = None
    backend = None

    def forward(self, *arrays, **params):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *tensors, **params):
        """Run forward on the tensors' arrays; return a Tensor that remembers this call for backward."""
        fn = cls()
        backend = fn.backend = tensors[0]._backend
        fn.xp = backend.xp
        arrays = []
        any_requires_grad = False
        for t in tensors:  # one pass: device check, raw arrays, whether a graph is needed
            if t._backend is not backend:
                raise DeviceError(
                    f"{cls.__name__}: tensors on different devices "
                    f"({backend.name!r} and {t._backend.name!r}); move them with .to(device)"
                )
            arrays.append(t.array)
            any_requires_grad = any_requires_grad or t.requires_grad
        out = fn.forward(*arrays, **params)
        if any_requires_grad and _GradMode.enabled:
            fn.inputs = tensors
            fn.clock = Writes.count
            return Tensor._wrap(out, backend, True, fn)
        return Tensor._wrap(out, backend, False, None)

    def release(self) -> None:
        """Drop the inputs and everything saved for backward; the graph cannot be walked again."""
        self.__dict__.clear()
        self.released = True

    released = False


def record_write(t) -> None:
    """Advance the write clock for an in-place write into t's storage, and mark the graph node
    that made the storage (if it saved the array for backward) as overwritten."""
    owner = t if t._base is None else t._base
    Writes.count += 1
    owner._version = Writes.count
    fn = owner.grad_fn
    if fn is not None and _saves(fn, owner.array):
        fn.overwritten = True


def _saves(fn, array) -> bool:
    """Return whether fn keeps `array` (or the array it is a view of) for backward."""
    base = getattr(array, "base", None)
    for value in vars(fn).values():
        for saved in value if isinstance(value, (tuple, list)) else (value,):
            if saved is array or (base is not None and saved is base):
                return True
    return False


def _check_unchanged(fn) -> None:
    """Raise GraphError if an array fn's backward reads was changed in place after fn was made."""
    name = type(fn).__name__
    if getattr(fn, "overwritten", False):
        raise GraphError(
            f"backward of {name}: its output, which its backward reads, was changed by an in-place "
            "operation; clone() the tensor before changing it, or use the out-of-place op"
        )
    for t in fn.inputs:
        owner = t if t._base is None else t._base
        if owner._version > fn.clock:
            raise GraphError(
                f"backward of {name}: an input of shape {t.shape} was changed by an in-place operation "
                "after the op used it; clone() it before the change, or use the out-of-place op"
            )


def sum_to(xp, grad, shape: tuple):
    """Return `grad` summed over the axes that broadcasting added or stretched, to `shape`."""
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(extra + i for i, n in enumerate(shape) if n == 1 and grad.shape[extra + i] != 1)
    if axes:
        grad = xp.sum(grad, axis=axes, keepdims=True)
    if extra:
        grad = xp.reshape(grad, shape)
    return grad


def topological_order(root) -> list:
    """Return the tensors of root's graph that need a gradient, each after all that it feeds.

    Iterative depth-first search, so a graph 100,000 ops deep needs no recursion.
    """
    order = []
    visited = set()
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        fn = node.grad_fn
        if fn is not None:
            if fn.released:
                raise GraphError(
                    "backward through a graph whose saved arrays were already freed by an "
                    "earlier backward(); call backward(retain_graph=True) the first time"
                )
            for parent in fn.inputs:
                if parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    order.reverse()
    return order


class IndexedGrad:
    """The gradient of a basic index `a[index]` with respect to a: zero but at `index`, where it
    is `values`. GetItem's backward returns one instead of a whole array of zeros; run_backward
    adds it into a's gradient in place. Splitting a tensor into pieces (q, k and v out of one
    projection) then costs one array of zeros and a write per piece, not a full array of zeros
    per piece and their sums.

    `order` is the memory order of a (its axes from the largest stride down) when a was a
    permuted view, else None: the gradient is laid out the same way, so that undoing the
    permutation in backward gives a C-contiguous array again (q, k and v cut from a permuted
    projection: the projection's gradient is then a view, not a copy)."""

    __slots__ = ("shape", "dtype", "index", "values", "order")

    def __init__(self, shape: tuple, dtype, index: tuple, values, order: tuple | None = None) -> None:
        self.shape, self.dtype, self.index, self.values, self.order = shape, dtype, index, values, order


def run_backward(root, grad, retain_graph: bool = False) -> None:
    """Propagate `grad` (d loss / d root) to every leaf of root's graph, adding into `.grad`.

    A tensor reached by several paths gets their gradients summed. The first sum makes a new
    array, which nothing else holds (`owned`), so the later ones add into it in place.
    """
    grads = {id(root): grad}
    owned = set()
    for node in topological_order(root):
        node_grad = grads.pop(id(node), None)
        owned.discard(id(node))  # from here on, the array may be held by a grad or a saved value
        if node_grad is None:
            continue
        fn = node.grad_fn
        if fn is None or node._retains_grad:
            node._accumulate(node_grad)
        if fn is None:
            for hook in node._post_accumulate_hooks:  # a leaf is visited once, after all its consumers
                hook(node)
            continue
        if fn.clock < Writes.count:
            _check_unchanged(fn)
        input_grads = fn.backward(node_grad)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        xp = fn.xp
        for parent, parent_grad in zip(fn.inputs, input_grads):
            if parent_grad is None or not parent.requires_grad:
                continue
            key = id(parent)
            previous = grads.get(key)
            if isinstance(parent_grad, IndexedGrad):
                grads[key] = _add_at(xp, previous if key in owned else None, previous, parent_grad)
                owned.add(key)
                continue
            if parent_grad.shape != parent.array.shape:
                parent_grad = sum_to(xp, parent_grad, parent.array.shape)
            if parent_grad.dtype != parent.array.dtype:  # a float64 op downstream of a float32 one, as in PyTorch
                parent_grad = xp.astype(parent_grad, parent.array.dtype)
            if previous is None:
                grads[key] = parent_grad
            elif key in owned:
                previous += parent_grad  # in place on an array; a NumPy scalar (a 0-d sum) makes a new one
                grads[key] = previous
            else:
                grads[key] = previous + parent_grad
                owned.add(key)
        if not retain_graph:
            fn.release()


def _add_at(xp, own, previous, grad: IndexedGrad):
    """Return a gradient array: `own` (ours to change) or a copy of `previous` or zeros, plus
    grad.values at grad.index."""
    target = own if hasattr(own, "__setitem__") else None  # not a NumPy scalar, which a 0-d sum gives
    fresh = target is None and previous is None
    if fresh:
        target = _zeros(xp, grad.shape, grad.dtype, grad.order)
    elif target is None:
        target = xp.asarray(previous, copy=True)
    part = target[grad.index]
    values = xp.reshape(grad.values, part.shape)
    if values.dtype != target.dtype:
        values = xp.astype(values, target.dtype)
    target[grad.index] = values if fresh else part + values  # zeros plus values are the values
    return target


def _zeros(xp, shape: tuple, dtype, order: tuple | None):
    """Return zeros of `shape` whose axes lie in memory in `order` (None: C order)."""
    if order is None:
        return xp.zeros(shape, dtype=dtype)
    inverse = [0] * len(order)
    for position, axis in enumerate(order):
        inverse[axis] = position
    return xp.permute_dims(xp.zeros(tuple(shape[axis] for axis in order), dtype=dtype), tuple(inverse))


from tinyllm.autograd.tensor import Tensor  # noqa: E402  (Tensor and Function refer to each other)
