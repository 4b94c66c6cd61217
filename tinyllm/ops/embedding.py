"""Embedding lookup: rows of a weight matrix picked by integer ids; the gradient scatter-adds."""

from __future__ import annotations

from tinyllm.autograd.function import Function
from tinyllm.autograd.tensor import Tensor
from tinyllm.errors import DTypeError
from tinyllm.validate import check_token_ids


class Embedding(Function):
    def forward(self, weight, ids):
        xp = self.xp
        self.weight_shape, self.weight_dtype = weight.shape, weight.dtype
        self.flat_ids = xp.reshape(ids, (-1,))
        rows = xp.take(weight, self.flat_ids, axis=0)
        return xp.reshape(rows, tuple(ids.shape) + (weight.shape[1],))

    def backward(self, grad):
        xp = self.xp
        full = xp.zeros(self.weight_shape, dtype=self.weight_dtype)
        flat_grad = xp.reshape(grad, (-1, self.weight_shape[1]))
        return self.backend.scatter_add(full, self.flat_ids, flat_grad)


def embedding(ids: Tensor, weight: Tensor) -> Tensor:
    """Return weight[ids]: ids (...) of integers in [0, num_embeddings), result (..., dim)."""
    if ids.dtype not in ("int64", "int32", "int16", "int8", "uint8"):
        raise DTypeError(f"embedding ids must be integers, got dtype {ids.dtype}")
    check_token_ids(ids.array, weight.shape[0], f"embedding ids (an embedding of {weight.shape[0]} rows)")
    return Embedding.apply(weight, ids.long() if ids.dtype != "int64" else ids)
