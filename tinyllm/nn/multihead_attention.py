"""`nn.MultiheadAttention`, PyTorch's: packed input projection, masks in PyTorch's conventions.

Masks, as PyTorch defines them for this module (the opposite of scaled_dot_product_attention's
bool convention):
- attn_mask (L, S) or (N * num_heads, L, S): bool True = may NOT attend; float = added to scores;
- key_padding_mask (N, S): bool True = that key is padding, ignored; float = added;
- is_causal with no attn_mask applies the causal mask (PyTorch requires the mask as well and
  treats is_causal only as a hint about it).
"""

# ruff: noqa: N803, N806 - N, L, S, E, H, D: the field's names for tensor sizes

from __future__ import annotations

import math

from tinyllm import ops
from tinyllm.autograd.tensor import Tensor
from tinyllm.errors import DTypeError, ShapeError, UnsupportedError
from tinyllm.nn import functional as F
from tinyllm.nn import init
from tinyllm.nn.layers import Linear
from tinyllm.nn.module import Module, Parameter
from tinyllm.validate import check_float, check_int


def additive_mask(mask: Tensor | None, name: str) -> Tensor | None:
    """Return a PyTorch-convention mask (bool True = masked, or float) as an additive 0 / -inf
    float tensor, or None."""
    if mask is None:
        return None
    if mask.dtype == "bool":
        return ops.where(mask, -math.inf, 0.0)
    if mask.dtype not in ("float16", "float32", "float64"):
        raise DTypeError(f"{name} must be bool or float, got dtype {mask.dtype}")
    return mask.detach()


class MultiheadAttention(Module):
    """Return (output, weights) of multi-head attention of query over key/value.

    Shapes with batch_first=False (PyTorch's default): query (L, N, E), key and value (S, N, E),
    output (L, N, E); batch_first=True puts N first. weights (N, L, S) averaged over heads (or
    (N, H, L, S)), None with need_weights=False. Unbatched inputs (L, E) are accepted too.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.embed_dim = check_int("embed_dim", embed_dim, minimum=1)
        self.num_heads = check_int("num_heads", num_heads, minimum=1)
        if embed_dim % num_heads:
            raise ShapeError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        for name, value in (("add_bias_kv", add_bias_kv), ("add_zero_attn", add_zero_attn)):
            if value:
                raise UnsupportedError(f"nn.MultiheadAttention does not support the argument {name!r}")
        if kdim not in (None, embed_dim) or vdim not in (None, embed_dim):
            raise UnsupportedError("nn.MultiheadAttention does not support the arguments 'kdim'/'vdim' != embed_dim")
        self.kdim = self.vdim = embed_dim
        self.head_dim = embed_dim // num_heads
        self.dropout = check_float("dropout", dropout, 0.0, 1.0)
        self.batch_first = batch_first
        self.in_proj_weight = Parameter(ops.zeros(3 * embed_dim, embed_dim))
        self.in_proj_bias = Parameter(ops.zeros(3 * embed_dim)) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias)
        init.xavier_uniform_(self.in_proj_weight)
        if bias:
            init.zeros_(self.out_proj.bias)
        if device is not None or dtype is not None:
            self.to(device=device, dtype=dtype)

    def _project(self, x: Tensor, part: slice) -> Tensor:
        bias = None if self.in_proj_bias is None else self.in_proj_bias[part]
        return F.linear(x, self.in_proj_weight[part], bias)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        unbatched = query.ndim == 2
        if unbatched:
            query, key, value = (ops.unsqueeze(t, 1) for t in (query, key, value))  # (L, 1, E)
            key_padding_mask = None if key_padding_mask is None else ops.unsqueeze(key_padding_mask, 0)
        elif self.batch_first:
            query, key, value = (ops.transpose(t, 0, 1) for t in (query, key, value))  # (L, N, E)
        if query.ndim != 3 or query.shape[-1] != self.embed_dim or key.shape != value.shape:
            raise ShapeError(
                f"MultiheadAttention: query {query.shape}, key {key.shape}, value {value.shape} do not fit "
                f"embed_dim {self.embed_dim}"
            )
        L, N, E = query.shape
        S, H, D = key.shape[0], self.num_heads, self.head_dim
        E3 = slice(0, E), slice(E, 2 * E), slice(2 * E, 3 * E)
        if query is key and key is value:  # self-attention: one packed projection
            q, k, v = ops.split(F.linear(query, self.in_proj_weight, self.in_proj_bias), E, -1)  # 3 x (L, N, E)
        else:
            q, k, v = self._project(query, E3[0]), self._project(key, E3[1]), self._project(value, E3[2])
        q = ops.permute(ops.reshape(q, (L, N, H, D)), (1, 2, 0, 3))  # (N, H, L, D)
        k = ops.permute(ops.reshape(k, (S, N, H, D)), (1, 2, 0, 3))  # (N, H, S, D)
        v = ops.permute(ops.reshape(v, (S, N, H, D)), (1, 2, 0, 3))  # (N, H, S, D)
        mask = self._merged_mask(attn_mask, key_padding_mask, is_causal, N, L, S, query)  # (N or 1, H or 1, L, S)
        dropout_p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = ops.matmul(q * (1.0 / math.sqrt(D)), ops.transpose(k, -2, -1))  # (N, H, L, S)
            if mask is not None:
                scores = scores + mask
            weights = F.dropout(ops.softmax(scores, -1), dropout_p, True)  # (N, H, L, S)
            out = ops.matmul(weights, v)  # (N, H, L, D)
            if average_attn_weights:
                weights = ops.mean(weights, 1)  # (N, L, S)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)  # (N, H, L, D)
        out = ops.reshape(ops.permute(out, (2, 0, 1, 3)), (L, N, E))  # (L, N, E)
        out = self.out_proj(out)  # (L, N, E)
        if unbatched:
            return ops.squeeze(out, 1), None if weights is None else ops.squeeze(weights, 0)
        if self.batch_first:
            out = ops.transpose(out, 0, 1)  # (N, L, E)
        return out, weights

    def _merged_mask(self, attn_mask, key_padding_mask, is_causal, N, L, S, like) -> Tensor | None:
        """Return the additive mask (broadcastable to (N, H, L, S)) of both masks, or None."""
        if attn_mask is None and is_causal:
            attn_mask = ops.triu(ops.ones(L, S, dtype="bool", device=like.device), 1)  # (L, S) True above
        mask = additive_mask(attn_mask, "attn_mask")
        if mask is not None:
            if mask.ndim == 3:
                if mask.shape != (N * self.num_heads, L, S):
                    raise ShapeError(f"3-d attn_mask must be (N * num_heads, L, S), got {mask.shape}")
                mask = ops.reshape(mask, (N, self.num_heads, L, S))
            elif mask.shape != (L, S):
                raise ShapeError(f"attn_mask must be (L, S) = {(L, S)}, got {mask.shape}")
        padding = additive_mask(key_padding_mask, "key_padding_mask")
        if padding is not None:
            if padding.shape != (N, S):
                raise ShapeError(f"key_padding_mask must be (N, S) = {(N, S)}, got {padding.shape}")
            padding = ops.reshape(padding, (N, 1, 1, S))
            mask = padding if mask is None else mask + padding
        return None if mask is None else ops.astype(mask, like.dtype)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"
