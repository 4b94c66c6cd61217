"""Attention in plain array code: the teaching version, the oracle of the fused kernels, and the
fallback on any backend (NumPy, CuPy, array_api_strict).

It materializes the (Tq, Tk) scores and probabilities of every head, which is what the fused
kernels avoid. The semantics that every attention kernel shares:

- q (B, H, Tq, D), k and v (B, H, Tk, D), out (B, H, Tq, D);
- scores = q @ k^T * scale + bias, bias an additive float array broadcastable to (B, H, Tq, Tk)
  (a boolean mask becomes 0 / -inf through `mask_to_bias`), or None;
- causal: query i may attend to keys j <= i (top-left aligned, as PyTorch's is_causal);
- a query row whose every score is -inf (every key masked) gives zeros in the output and zero
  gradients, never NaN; the bias itself is not differentiated.
"""

from __future__ import annotations

import math

from tinyllm.backend import backend_of


def mask_to_bias(mask, dtype_like):
    """Return a boolean mask (True = may attend) as an additive 0 / -inf array of dtype_like's
    dtype, or a float mask cast to that dtype."""
    xp = backend_of(mask).xp
    if mask.dtype == xp.bool:
        zero = xp.asarray(0.0, dtype=dtype_like.dtype)
        return xp.where(mask, zero, xp.asarray(-math.inf, dtype=dtype_like.dtype))
    return xp.astype(mask, dtype_like.dtype)


def probabilities(xp, q, k, bias, causal: bool, scale: float):
    """Return softmax(q @ k^T * scale + bias) over keys: (B, H, Tq, Tk); fully masked rows are 0."""
    scores = xp.matmul(q, xp.permute_dims(k, (0, 1, 3, 2))) * scale  # (B, H, Tq, Tk)
    if bias is not None:
        scores = scores + bias
    if causal:
        t_q, t_k = q.shape[2], k.shape[2]
        allowed = xp.arange(t_q)[:, None] >= xp.arange(t_k)[None, :]  # (Tq, Tk)
        scores = xp.where(allowed, scores, xp.asarray(-math.inf, dtype=scores.dtype))
    if scores.shape[-1] == 0:  # no keys: no probabilities, and probs @ v is zeros
        return scores
    row_max = xp.max(scores, axis=-1, keepdims=True)  # (B, H, Tq, 1)
    row_max = xp.where(xp.isfinite(row_max), row_max, xp.zeros_like(row_max))  # all -inf -> 0
    probs = xp.exp(scores - row_max)  # (B, H, Tq, Tk); exp(-inf) = 0 for masked keys
    denominator = xp.sum(probs, axis=-1, keepdims=True)  # (B, H, Tq, 1)
    return probs / xp.where(denominator > 0, denominator, xp.ones_like(denominator))


def forward(q, k, v, bias, causal: bool, scale: float):
    """Return (out (B, H, Tq, D), saved): saved holds the probabilities (B, H, Tq, Tk) for backward."""
    xp = backend_of(q).xp
    probs = probabilities(xp, q, k, bias, causal, scale)
    return xp.matmul(probs, v), (q, k, v, probs, scale)


def backward(saved, grad_out):
    """Return (dq, dk, dv) for d loss / d out = grad_out, from the saved probabilities.

    With P the probabilities and dO = grad_out: dV = P^T dO, dP = dO V^T, and through the softmax
    dS = P * (dP - rowsum(dP * P)); then dQ = dS K * scale and dK = dS^T Q * scale.
    """
    q, k, v, probs, scale = saved
    xp = backend_of(q).xp
    probs_t = xp.permute_dims(probs, (0, 1, 3, 2))  # (B, H, Tk, Tq)
    grad_v = xp.matmul(probs_t, grad_out)  # (B, H, Tk, D)
    grad_probs = xp.matmul(grad_out, xp.permute_dims(v, (0, 1, 3, 2)))  # (B, H, Tq, Tk)
    grad_scores = probs * (grad_probs - xp.sum(grad_probs * probs, axis=-1, keepdims=True))
    grad_q = xp.matmul(grad_scores, k) * scale  # (B, H, Tq, D)
    grad_k = xp.matmul(xp.permute_dims(grad_scores, (0, 1, 3, 2)), q) * scale  # (B, H, Tk, D)
    return grad_q, grad_k, grad_v
