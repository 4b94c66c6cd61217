"""Shape ops: reshape, permute/transpose, expand, squeeze/unsqueeze, concatenate, stack, split,
indexing, and triangular masks. They move or copy elements and never compute with them, so each
backward puts gradients back where their elements came from."""

from __future__ import annotations

import math

from tinyllm.autograd.function import Function
from tinyllm.autograd.tensor import Tensor
from tinyllm.errors import OutOfRangeError, ShapeError
from tinyllm.ops.convert import raw_index


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
        if hasattr(index, "shape") and index.dtype != xp.bool:
            # a[ids], one integer array picking along axis 0: `take` is how the array API says it
            rows = xp.take(a, xp.reshape(index, (-1,)), axis=0)
            return xp.reshape(rows, tuple(index.shape) + tuple(a.shape[1:]))
        return a[index]

    def backward(self, grad):
        xp = self.xp
        full = xp.zeros(self.input_shape, dtype=self.input_dtype)
        if _has_array(self.index):
            return self.backend.scatter_add(full, self.index, grad)
        # assignment takes no None (new axis) in the array API: drop them, and their size-1 axes
        index = tuple(part for part in self.index if part is not None)
        full[index] = xp.reshape(grad, full[index].shape)
        return full


class Triangle(Function):
    def forward(self, a, k, lower):
        self.k, self.lower = k, lower
        return self.xp.tril(a, k=k) if lower else self.xp.triu(a, k=k)

    def backward(self, grad):
        return self.xp.tril(grad, k=self.k) if self.lower else self.xp.triu(grad, k=self.k)


def _has_array(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(hasattr(p, "shape") and hasattr(p, "dtype") for p in parts)


def reshape(a: Tensor, shape) -> Tensor:
    """Return a with a new shape of the same number of elements (one entry may be -1)."""
    shape = tuple(map(int, shape))
    size = math.prod(a.array.shape)
    if -1 in shape:
        known = -math.prod(shape)  # the product of the other entries
        if shape.count(-1) > 1 or min(shape) < -1 or known == 0 or size % known:
            raise ShapeError(f"cannot reshape a tensor of shape {a.shape} ({size} elements) into {shape}")
        shape = tuple([size // known if n == -1 else n for n in shape])
    elif math.prod(shape) != size or min(shape, default=0) < 0:
        raise ShapeError(f"cannot reshape a tensor of shape {a.shape} ({size} elements) into {shape}")
    if shape == tuple(a.array.shape):
        return a
    return Reshape.apply(a, shape=shape)


def permute(a: Tensor, axes) -> Tensor:
    """Return a with its axes reordered."""
    ndim = a.array.ndim
    axes = tuple([axis % ndim for axis in axes]) if ndim else tuple(axes)
    if sorted(axes) != list(range(ndim)):
        raise ShapeError(f"permute axes {tuple(axes)} are not a permutation of {a.ndim} axes")
    return Permute.apply(a, axes=axes)


def transpose(a: Tensor, axis0: int = -2, axis1: int = -1) -> Tensor:
    """Return a with two axes swapped."""
    axes = list(range(a.ndim))
    axes[axis0], axes[axis1] = axes[axis1], axes[axis0]
    return Permute.apply(a, axes=tuple(axes))


def expand(a: Tensor, shape) -> Tensor:
    """Return a broadcast to shape (-1 keeps a dimension); the gradient is summed back."""
    shape = tuple(shape)
    offset = len(shape) - a.ndim
    if offset < 0:
        raise ShapeError(f"cannot expand shape {a.shape} to fewer dimensions {shape}")
    shape = tuple(a.shape[i - offset] if n == -1 else n for i, n in enumerate(shape))
    for i, n in enumerate(a.shape):
        if n != 1 and n != shape[offset + i]:
            raise ShapeError(f"cannot expand shape {a.shape} to {shape}")
    if shape == a.shape:
        return a
    return Expand.apply(a, shape=shape)


broadcast_to = expand


def squeeze(a: Tensor, axis=None) -> Tensor:
    """Return a without the given size-1 axes (all size-1 axes when None)."""
    axes = (
        [i for i, n in enumerate(a.shape) if n == 1]
        if axis is None
        else [ax % a.ndim for ax in ((axis,) if isinstance(axis, int) else axis)]
    )
    for ax in axes:
        if a.shape[ax] != 1:
            raise ShapeError(f"cannot squeeze axis {ax} of size {a.shape[ax]} in shape {a.shape}")
    return reshape(a, tuple(n for i, n in enumerate(a.shape) if i not in axes))


def unsqueeze(a: Tensor, axis: int) -> Tensor:
    """Return a with a new size-1 axis at position axis."""
    axis = axis % (a.ndim + 1)
    return reshape(a, a.shape[:axis] + (1,) + a.shape[axis:])


def concatenate(tensors, axis: int = 0) -> Tensor:
    """Return the tensors joined along an existing axis."""
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("concatenate() needs at least one tensor")
    first = tensors[0].shape
    axis = axis % len(first)
    for t in tensors[1:]:
        if len(t.shape) != len(first) or any(x != y for i, (x, y) in enumerate(zip(t.shape, first)) if i != axis):
            raise ShapeError(f"concatenate along axis {axis}: shapes {first} and {t.shape} differ off that axis")
    return Concatenate.apply(*tensors, axis=axis)


cat = concatenate


def stack(tensors, axis: int = 0) -> Tensor:
    """Return the tensors (all of one shape) joined along a new axis."""
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("stack() needs at least one tensor")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ShapeError(f"stack() needs tensors of one shape, got {sorted(shapes)}")
    axis = axis % (tensors[0].ndim + 1)
    return concatenate([unsqueeze(t, axis) for t in tensors], axis=axis)


def split(a: Tensor, split_size_or_sections, axis: int = 0) -> list[Tensor]:
    """Return pieces of a along axis: of size split_size each (the last may be smaller), or of
    the listed sizes."""
    axis = axis % a.ndim
    length = a.shape[axis]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        sizes = [min(step, length - start) for start in range(0, length, step)]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != length:
            raise ShapeError(f"split sizes {sizes} do not add up to {length}, the size of axis {axis}")
    pieces, start = [], 0
    for size in sizes:
        index = (slice(None),) * axis + (slice(start, start + size),)
        pieces.append(getitem(a, index))
        start += size
    return pieces


def getitem(a: Tensor, index) -> Tensor:
    """Return a[index] for basic (ints, slices, None, Ellipsis), integer-array and bool-mask indexes.

    An index past the end raises OutOfRangeError, an IndexError, so `for row in tensor` stops.
    """
    index = raw_index(index, a._backend)
    try:
        return GetItem.apply(a, index=index)
    except IndexError as error:
        raise OutOfRangeError(f"index {index!r} does not fit a tensor of shape {a.shape}: {error}") from None


def tril(a: Tensor, k: int = 0) -> Tensor:
    """Return a with elements above the k-th diagonal of its last two axes set to zero."""
    return Triangle.apply(a, k=k, lower=True)


def triu(a: Tensor, k: int = 0) -> Tensor:
    """Return a with elements below the k-th diagonal of its last two axes set to zero."""
    return Triangle.apply(a, k=k, lower=False)
