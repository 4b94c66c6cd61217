"""Gradient-norm clipping as a plain float, for tinyllm's trainers (nn.utils.clip_grad_norm_ does the work)."""

from __future__ import annotations

from tinyllm.nn.utils import clip_grad_norm_


def clip_grad_norm(parameters, max_norm: float) -> float:
    """Return the global gradient norm before clipping; scale the gradients in place if it exceeds max_norm."""
    return float(clip_grad_norm_(parameters, max_norm).item())
