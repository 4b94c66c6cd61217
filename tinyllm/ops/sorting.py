"""Sorting along a dim: sort, argsort and topk, as in PyTorch. Indices come from a stable
argsort; values are picked by them, so their gradient goes back to the picked elements."""

from __future__ import annotations

from tinyllm.autograd.tensor import Tensor
from tinyllm.errors import ShapeError
from tinyllm.ops.reductions import TakeAlongDim, ValuesIndices
from tinyllm.ops.signature import normalize_dim, torch_signature
from tinyllm.validate import check_int


def _argsort_array(a: Tensor, dim: int, descending: bool):
    xp = a._backend.xp
    keys = a.array if a.dtype != "bool" else xp.astype(a.array, xp.int8)
    # the array API's `descending` is not in NumPy; negating keeps a stable order among ties
    return xp.argsort(-keys if descending else keys, axis=dim, stable=True)


@torch_signature
def argsort(a: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """Return the indices that sort a along dim (ties in their original order)."""
    if not a.ndim:
        return Tensor._wrap(a._backend.xp.zeros((), dtype=a._backend.xp.int64), a._backend, False, None)
    dim = normalize_dim(dim, a.ndim, "argsort")
    return Tensor._wrap(_argsort_array(a, dim, descending), a._backend, False, None)


@torch_signature
def sort(a: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> ValuesIndices:
    """Return (values, indices) of a sorted along dim."""
    indices = argsort(a, dim, descending)
    if not a.ndim:
        return ValuesIndices(a, indices)
    return ValuesIndices(TakeAlongDim.apply(a, indices, dim=normalize_dim(dim, a.ndim)), indices)


@torch_signature
def topk(a: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> ValuesIndices:  # noqa: A002
    """Return (values, indices) of the k largest (smallest if not largest) elements along dim, in order."""
    if not a.ndim:
        a_1d = a.reshape(1)
        values, indices = topk(a_1d, k, 0, largest, sorted)
        return ValuesIndices(values.reshape(()), indices.reshape(()))
    dim = normalize_dim(dim, a.ndim, "topk")
    k = check_int("k", k, minimum=0)
    if k > a.shape[dim]:
        raise ShapeError(f"topk: k={k} is larger than dim {dim} of size {a.shape[dim]}")
    order = _argsort_array(a, dim, descending=largest)
    index = (slice(None),) * dim + (slice(0, k), Ellipsis)
    indices = Tensor._wrap(order[index], a._backend, False, None)
    return ValuesIndices(TakeAlongDim.apply(a, indices, dim=dim), indices)
