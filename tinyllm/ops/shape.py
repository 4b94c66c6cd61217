"""Shape ops: reshape, permute/transpose, expand, squeeze/unsqueeze, concatenate, stack, split,
indexing, and triangular masks. They move or copy elements and never compute with them, so each
backward puts gradients back where their elements came from."""

from __future__ import annotations

import math

from tinyllm.autograd.function import Function, IndexedGrad
from tinyllm.autograd.tensor import Tensor
from tinyllm.errors import OutOfRangeError, ShapeError
from tinyllm.ops.convert import raw_index
from tinyllm.ops.signature import normalize_dim, normalize_dims, torch_signature
from tinyllm.validate import check_int


class Reshape(Function):
    def forward(self, a, shape):
        self.input_shape = a.shape
        return self.xp.reshape(a, shape)

    def backward(self, grad):
        return self.xp.reshape(grad, self.input_shape)


class Permute(Function):
    def forward(self, a, axes):
        self.axes = axes
        return self.xp.permute_dims(a, axes)

    def backward(self, grad):
        inverse = [0] * len(self.axes)
        for position, axis in enumerate(self.axes):
            inverse[axis] = position
        return self.xp.permute_dims(grad, tuple(inverse))


class Expand(Function):
    def forward(self, a, shape):
        return self.xp.broadcast_to(a, shape)

    def backward(self, grad):
        return grad  # sum_to reduces it to the input shape


class Concatenate(Function):
    def forward(self, *arrays, axis):
        self.axis = axis
        self.sizes = [a.shape[axis] for a in arrays]
        return self.xp.concat(arrays, axis=axis)

    def backward(self, grad):
        grads = []
        start = 0
        for size in self.sizes:
            index = [slice(None)] * grad.ndim
            index[self.axis] = slice(start, start + size)
            grads.append(grad[tuple(index)])
            start += size
        return tuple(grads)


class GetItem(Function):
    def forward(self, a, index):
        xp = self.xp
        self.input_shape = a.shape
        self.input_dtype = a.dtype
        self.index = index
        self.input_order = _memory_order(a)
        if hasattr(index, "shape") and index.dtype != xp.bool:
            # a[ids], one integer array picking along axis 0: `take` is how the array API says it
            rows = xp.take(a, xp.reshape(index, (-1,)), axis=0)
            return xp.reshape(rows, tuple(index.shape) + tuple(a.shape[1:]))
        return a[index]

    def backward(self, grad):
        if _has_array(self.index):
            full = self.xp.zeros(self.input_shape, dtype=self.input_dtype)
            return self.backend.scatter_add(full, self.index, grad)
        # assignment takes no None (new axis) in the array API: drop them, and their size-1 axes
        index = tuple(part for part in self.index if part is not None)
        return IndexedGrad(self.input_shape, self.input_dtype, index, grad, self.input_order)


class Triangle(Function):
    def forward(self, a, k, lower):
        self.k, self.lower = k, lower
        return self.xp.tril(a, k=k) if lower else self.xp.triu(a, k=k)

    def backward(self, grad):
        return self.xp.tril(grad, k=self.k) if self.lower else self.xp.triu(grad, k=self.k)


def _memory_order(a) -> tuple | None:
    """Return a's axes from the largest stride down when a is a permuted view (an axis order
    other than C's), else None; None too for arrays without strides (the array API's)."""
    strides = getattr(a, "strides", None)
    if strides is None or a.ndim < 2 or a.flags.c_contiguous:
        return None
    order = tuple(sorted(range(a.ndim), key=lambda axis: -strides[axis]))
    return None if order == tuple(range(a.ndim)) else order


def _has_array(index) -> bool:
    for part in index if isinstance(index, tuple) else (index,):
        if hasattr(part, "shape") and hasattr(part, "dtype"):
            return True
    return False


def _shape_arg(shape: tuple) -> tuple:
    """Return the sizes of `f(2, 3)` and `f((2, 3))` alike, as PyTorch takes both."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def reshape(a: Tensor, *sizes, shape=None) -> Tensor:
    """Return a with a new shape of the same number of elements (one entry may be -1):
    reshape(a, 2, 3), reshape(a, (2, 3)) or reshape(a, shape=(2, 3))."""
    shape = tuple(map(int, _shape_arg(sizes) if shape is None else shape))
    old = a.array.shape
    size = math.prod(old)
    if -1 in shape:
        known = -math.prod(shape)  # the product of the other entries
        if shape.count(-1) > 1 or min(shape) < -1 or known == 0 or size % known:
            raise ShapeError(f"cannot reshape a tensor of shape {a.shape} ({size} elements) into {shape}")
        i = shape.index(-1)
        shape = shape[:i] + (size // known,) + shape[i + 1 :]
    elif math.prod(shape) != size or min(shape, default=0) < 0:
        raise ShapeError(f"cannot reshape a tensor of shape {a.shape} ({size} elements) into {shape}")
    if shape == old:
        return a
    return _view(Reshape.apply(a, shape=shape), a)


def permute(a: Tensor, *dim_args, dims=None) -> Tensor:
    """Return a with its dims reordered: permute(a, 2, 0, 1), permute(a, (2, 0, 1)) or permute(a, dims=...)."""
    dims = _shape_arg(dim_args) if dims is None else tuple(dims)
    ndim = a.array.ndim
    if len(dims) == ndim and all(type(d) is int for d in dims) and sorted(dims) == list(range(ndim)):  # the common case
        return permuted(a, dims)
    axes = tuple(normalize_dim(d, ndim, "permute") for d in dims) if ndim else ()
    if len(dims) != ndim or sorted(axes) != list(range(ndim)):
        raise ShapeError(f"permute dims {dims} are not a permutation of the {a.ndim} dims of shape {a.shape}")
    return permuted(a, axes)


def permuted(a: Tensor, axes: tuple) -> Tensor:
    """Return a with its dims in the order `axes`, a permutation of range(a.ndim) not checked
    again (Tensor.T and transpose build theirs)."""
    return _view(Permute.apply(a, axes=axes), a)


@torch_signature
def transpose(a: Tensor, dim0: int = -2, dim1: int = -1) -> Tensor:
    """Return a with dims dim0 and dim1 swapped."""
    ndim = a.array.ndim
    dim0, dim1 = normalize_dim(dim0, ndim, "transpose"), normalize_dim(dim1, ndim, "transpose")
    if dim0 == dim1:
        return a
    axes = list(range(ndim))
    axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
    return permuted(a, tuple(axes))


def expand(a: Tensor, *sizes, size=None) -> Tensor:
    """Return a broadcast to sizes (-1 keeps a dim); the gradient is summed back."""
    shape = tuple(map(int, _shape_arg(sizes) if size is None else size))
    offset = len(shape) - a.ndim
    if offset < 0:
        raise ShapeError(f"cannot expand shape {a.shape} to fewer dimensions {shape}")
    if any(n == -1 for n in shape[:offset]):
        raise ShapeError(f"expand: -1 is not allowed for the new leading dims of {shape}")
    shape = tuple(a.shape[i - offset] if n == -1 else n for i, n in enumerate(shape))
    for i, n in enumerate(a.shape):
        if n != 1 and n != shape[offset + i]:
            raise ShapeError(f"cannot expand shape {a.shape} to {shape}")
    if shape == a.shape:
        return a
    return _view(Expand.apply(a, shape=shape), a)


broadcast_to = expand


def repeat(a: Tensor, *sizes) -> Tensor:
    """Return a tiled sizes[i] times along each dim (PyTorch's repeat, NumPy's tile)."""
    sizes = tuple(map(int, _shape_arg(sizes)))
    if len(sizes) < a.ndim:
        raise ShapeError(f"repeat: {len(sizes)} sizes for a tensor of {a.ndim} dims; give at least one per dim")
    shape = (1,) * (len(sizes) - a.ndim) + a.shape
    interleaved = reshape(a, tuple(n for size in shape for n in (1, size)))  # (1, s0, 1, s1, ...)
    tiled = expand(interleaved, tuple(n for r, size in zip(sizes, shape) for n in (r, size)))  # (r0, s0, r1, s1, ...)
    return reshape(tiled, tuple(r * size for r, size in zip(sizes, shape)))


@torch_signature
def squeeze(a: Tensor, dim=None) -> Tensor:
    """Return a without its size-1 dims among dim (all of them when None); a dim whose size is
    not 1 is left as it is, as in PyTorch."""
    dims = normalize_dims(dim, a.ndim, "squeeze")
    return reshape(a, tuple(n for i, n in enumerate(a.shape) if not (i in dims and n == 1)))


@torch_signature
def unsqueeze(a: Tensor, dim: int) -> Tensor:
    """Return a with a new size-1 dim at position dim (in [-ndim - 1, ndim])."""
    dim = normalize_dim(dim, a.ndim + 1, "unsqueeze")
    return reshape(a, a.shape[:dim] + (1,) + a.shape[dim:])


@torch_signature
def flatten(a: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Return a with dims start_dim..end_dim (inclusive) merged into one; a 0-d tensor becomes (1,)."""
    if not a.ndim:
        return reshape(a, (1,))
    start, end = normalize_dim(start_dim, a.ndim, "flatten"), normalize_dim(end_dim, a.ndim, "flatten")
    if start > end:
        raise ShapeError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for shape {a.shape}")
    return reshape(a, a.shape[:start] + (math.prod(a.shape[start : end + 1]),) + a.shape[end + 1 :])


@torch_signature
def unflatten(a: Tensor, dim: int, sizes) -> Tensor:
    """Return a with dim split into the dims `sizes` (one entry may be -1)."""
    dim = normalize_dim(dim, a.ndim, "unflatten")
    return reshape(a, a.shape[:dim] + tuple(sizes) + a.shape[dim + 1 :])


@torch_signature
def cat(tensors, dim: int = 0) -> Tensor:
    """Return the tensors joined along an existing dim."""
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("cat() needs at least one tensor")
    first = tensors[0].shape
    if not first:
        raise ShapeError("cat() cannot join 0-d tensors; stack() them")
    dim = normalize_dim(dim, len(first), "cat")
    for t in tensors[1:]:
        if len(t.shape) != len(first) or any(x != y for i, (x, y) in enumerate(zip(t.shape, first)) if i != dim):
            raise ShapeError(f"cat along dim {dim}: shapes {first} and {t.shape} differ off that dim")
    return Concatenate.apply(*tensors, axis=dim)


concatenate = cat


@torch_signature
def stack(tensors, dim: int = 0) -> Tensor:
    """Return the tensors (all of one shape) joined along a new dim."""
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("stack() needs at least one tensor")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ShapeError(f"stack() needs tensors of one shape, got {sorted(shapes)}")
    dim = normalize_dim(dim, tensors[0].ndim + 1, "stack")
    return Concatenate.apply(*[unsqueeze(t, dim) for t in tensors], axis=dim)


@torch_signature
def split(a: Tensor, split_size_or_sections, dim: int = 0) -> tuple:
    """Return pieces of a along dim: of split_size each (the last may be smaller), or of the
    listed sizes."""
    dim = normalize_dim(dim, a.ndim, "split")
    length = a.shape[dim]
    if isinstance(split_size_or_sections, int):
        step = check_int("split_size", split_size_or_sections, minimum=1)
        sizes = [min(step, length - start) for start in range(0, length, step)] or [0]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != length:
            raise ShapeError(f"split sizes {sizes} do not add up to {length}, the size of dim {dim}")
    pieces, start = [], 0
    for size in sizes:
        index = (slice(None),) * dim + (slice(start, start + size),)
        pieces.append(getitem(a, index))
        start += size
    return tuple(pieces)


@torch_signature
def chunk(a: Tensor, chunks: int, dim: int = 0) -> tuple:
    """Return a split into at most `chunks` pieces along dim, each of ceil(size / chunks) but the last."""
    chunks = check_int("chunks", chunks, minimum=1)
    dim = normalize_dim(dim, a.ndim, "chunk")
    return split(a, max(-(-a.shape[dim] // chunks), 1), dim)


@torch_signature
def unbind(a: Tensor, dim: int = 0) -> tuple:
    """Return the slices of a along dim, each without that dim."""
    dim = normalize_dim(dim, a.ndim, "unbind")
    return tuple(getitem(a, (slice(None),) * dim + (i,)) for i in range(a.shape[dim]))


def getitem(a: Tensor, index) -> Tensor:
    """Return a[index] for basic (ints, slices, None, Ellipsis), integer-array and bool-mask indexes.

    An index past the end raises OutOfRangeError, an IndexError, so `for row in tensor` stops.
    """
    index = raw_index(index, a._backend)
    try:
        out = GetItem.apply(a, index=index)
    except IndexError as error:
        raise OutOfRangeError(f"index {index!r} does not fit a tensor of shape {a.shape}: {error}") from None
    return out if _has_array(index) else _view(out, a)  # integer and mask indexes copy


def _view(out: Tensor, a: Tensor) -> Tensor:
    """Return out, marked as sharing a's storage when its array is a view of a's: an in-place
    write through it is a write into a, for the version counter as for the values."""
    if getattr(out.array, "base", True) is not None:
        out._base = a if a._base is None else a._base
    return out


@torch_signature
def tril(a: Tensor, diagonal: int = 0) -> Tensor:
    """Return a with elements above the diagonal-th diagonal of its last two dims set to zero."""
    return Triangle.apply(a, k=_check_matrix(a, diagonal, "tril"), lower=True)


@torch_signature
def triu(a: Tensor, diagonal: int = 0) -> Tensor:
    """Return a with elements below the diagonal-th diagonal of its last two dims set to zero."""
    return Triangle.apply(a, k=_check_matrix(a, diagonal, "triu"), lower=False)


def _check_matrix(a: Tensor, diagonal: int, name: str) -> int:
    if a.ndim < 2:
        raise ShapeError(f"{name}() needs a tensor of at least 2 dims, got shape {a.shape}")
    return check_int("diagonal", diagonal)
