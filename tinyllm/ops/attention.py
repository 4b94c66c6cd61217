"""Scaled dot-product attention, PyTorch's signature.

This first version is composed from other ops (it materializes the (Tq, Tk) scores); the kernels
issue replaces its inside with a fused kernel dispatch and keeps the signature and semantics:

- q (B, H, Tq, D), k and v (B, H, Tk, D); the result is (B, H, Tq, D);
- attn_mask: bool (True = may attend) or additive float, broadcastable to (B, H, Tq, Tk);
- is_causal: query i attends to keys j <= i (top-left aligned, as PyTorch);
- a query row whose every key is masked gives zeros (and zero gradients), never NaN.
"""

from __future__ import annotations

import math

from tinyllm.autograd.tensor import Tensor
from tinyllm.errors import ShapeError
from tinyllm.ops.activations import softmax
from tinyllm.ops.convert import as_tensor
from tinyllm.ops.elementwise import logical_not, masked_fill, mul, where
from tinyllm.ops.linalg import matmul
from tinyllm.ops.shape import transpose

_MASKED = -1e30


def _allowed_and_bias(q: Tensor, k: Tensor, attn_mask, is_causal: bool):
    """Return (bool allowed mask or None, additive float bias or None), both broadcastable."""
    xp = q._backend.xp
    t_q, t_k = q.shape[-2], k.shape[-2]
    allowed = None
    bias = None
    if is_causal:
        causal = xp.tril(xp.ones((t_q, t_k), dtype=xp.bool))
        allowed = Tensor._wrap(causal, q._backend, False, None)
    if attn_mask is not None:
        if attn_mask.dtype == "bool":
            mask_allowed = attn_mask
        else:
            mask_allowed = Tensor._wrap(attn_mask.data > -math.inf, q._backend, False, None)
            bias = where(mask_allowed, attn_mask.detach(), as_tensor(0.0, q))
        allowed = mask_allowed if allowed is None else Tensor._wrap(allowed.data & mask_allowed.data, q._backend, False, None)
    return allowed, bias


def scaled_dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False, scale: float | None = None
) -> Tensor:
    """Return softmax(q @ k^T * scale + mask) @ v: (B, H, Tq, D) for q (B, H, Tq, D), k/v (B, H, Tk, D)."""
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ShapeError(f"attention needs (B, H, T, D) tensors, got q {q.shape}, k {k.shape}, v {v.shape}")
    if k.shape != v.shape or q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ShapeError(f"attention shapes do not fit: q {q.shape}, k {k.shape}, v {v.shape}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = mul(matmul(q, transpose(k, -2, -1)), scale)  # (B, H, Tq, Tk)
    allowed, bias = _allowed_and_bias(q, k, attn_mask, is_causal)
    if bias is not None:
        scores = scores + bias
    if allowed is None:
        return matmul(softmax(scores, axis=-1), v)
    not_allowed = logical_not(allowed)
    probs = softmax(masked_fill(scores, not_allowed, _MASKED), axis=-1)  # (B, H, Tq, Tk)
    xp = q._backend.xp
    any_allowed = xp.astype(xp.any(allowed.data, axis=-1, keepdims=True), probs.data.dtype)
    probs = mul(probs, Tensor._wrap(any_allowed, q._backend, False, None))  # fully masked rows -> 0
    return matmul(probs, v)
