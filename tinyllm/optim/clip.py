"""Gradient-norm clipping: scale all gradients together so that their global L2 norm is at most max_norm."""

from __future__ import annotations

import math

from tinyllm.autograd.tensor import Tensor


def clip_grad_norm(parameters, max_norm: float, eps: float = 1e-6) -> float:
    """Return the global gradient norm before clipping; scale the gradients in place if it exceeds max_norm."""
    parameters = [p for p in parameters if p.grad is not None]
    grads = [p.grad for p in parameters]
    if not grads:
        return 0.0
    squares = sum(float(g._backend.xp.sum(g.array * g.array)) for g in grads)
    total_norm = math.sqrt(squares)
    scale = max_norm / (total_norm + eps)
    if scale < 1.0:
        for p in parameters:
            p.grad = Tensor._wrap(p.grad.array * scale, p.grad._backend, False, None)
    return total_norm
