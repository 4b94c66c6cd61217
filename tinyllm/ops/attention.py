"""Scaled dot-product attention, PyTorch's signature, dispatched to a kernel.

- q (B, H, Tq, D), k and v (B, H, Tk, D); the result is (B, H, Tq, D);
- attn_mask: bool (True = may attend), integer 0/1 (1 = may attend, as Hugging Face's masks) or
  additive float, broadcastable to (B, H, Tq, Tk), e.g. a padding mask (B, 1, 1, Tk); it is not
  differentiated;
- is_causal: query i attends to keys j <= i (top-left aligned, as PyTorch);
- a query row whose every key is masked gives zeros (and zero gradients), never NaN.

Which kernel runs is chosen by `tinyllm.kernels` (see kernels/registry.py): on the CPU the fused
Numba kernel (never materializes the (Tq, Tk) scores) unless the scores are small and a backward
will run, on CuPy the numba.cuda kernel, and the plain reference in kernels/attention_reference.py
elsewhere and for small scores; `tinyllm.kernels.use(attention=...)` forces one.
"""

from __future__ import annotations

import math

from tinyllm.autograd.function import Function
from tinyllm.autograd.grad_mode import is_grad_enabled
from tinyllm.autograd.tensor import Tensor
from tinyllm.errors import DTypeError, ShapeError
from tinyllm.kernels import choose
from tinyllm.kernels.attention_reference import mask_to_bias
from tinyllm.validate import check_token_ids


class ScaledDotProductAttention(Function):
    def forward(self, q, k, v, bias=None, causal=False, scale=1.0, save=True):
        self.kernel = choose("attention", q, k, inference=not save)
        out, saved = self.kernel.forward(q, k, v, bias, causal, scale)
        if save:  # without a graph, nothing is kept (the reference's saved holds the T x T probabilities)
            self.saved = saved
        return out

    def backward(self, grad):
        return self.kernel.backward(self.saved, grad)


def default_scale(depth: int) -> float:
    """1 / sqrt(D), the scale of the scores when none is given; any scale for D = 0 (the output
    is then empty)."""
    return 1.0 / math.sqrt(depth) if depth else 1.0


def _check_mask(mask: Tensor, target: tuple) -> None:
    fits = mask.ndim <= 4 and all(m in (1, t) for m, t in zip(reversed(mask.shape), reversed(target)))
    if not fits:
        raise ShapeError(f"attn_mask of shape {mask.shape} cannot be broadcast to (B, H, Tq, Tk) = {target}")


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
) -> Tensor:
    """Return softmax(q @ k^T * scale + mask) @ v: (B, H, Tq, D) for q (B, H, Tq, D), k/v (B, H, Tk, D).

    scale defaults to 1 / sqrt(D). Rows with every key masked give zeros.
    """
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ShapeError(f"attention needs (B, H, T, D) tensors, got q {q.shape}, k {k.shape}, v {v.shape}")
    if k.shape != v.shape or q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ShapeError(f"attention shapes do not fit: q {q.shape}, k {k.shape}, v {v.shape}")
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in ("float16", "float32", "float64"):
        raise DTypeError(f"attention needs q, k, v of one float dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    scale = default_scale(q.shape[-1]) if scale is None else float(scale)
    bias = None
    if attn_mask is not None:
        _check_mask(attn_mask, (q.shape[0], q.shape[1], q.shape[2], k.shape[2]))
        mask = attn_mask.array
        if attn_mask.dtype in ("int64", "int32", "int16", "int8", "uint8"):  # keep/drop, never a bias
            mask = check_token_ids(mask, 2, "an integer attn_mask (1 = attend, 0 = masked)") != 0
        bias = mask_to_bias(mask, q.array)
    save = is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
    return ScaledDotProductAttention.apply(q, k, v, bias=bias, causal=bool(is_causal), scale=scale, save=save)
