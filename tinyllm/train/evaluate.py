"""Loss of a language model on held-out batches, and its perplexity."""

from __future__ import annotations

import math

from tinyllm.autograd.grad_mode import no_grad
from tinyllm.ops import tensor
from tinyllm.ops.losses import cross_entropy


def language_model_loss(model, x, y, device: str | None = None):
    """Return the mean next-token cross-entropy (a scalar Tensor) of model on ids x (B, T), targets y (B, T)."""
    logits = model(tensor(x, device=device))  # (B, T, V)
    return cross_entropy(logits, tensor(y, device=device))


def evaluate_loss(model, batches, device: str | None = None) -> float:
    """Return the mean loss over (x, y) batches, weighted by tokens, in eval mode and without a graph."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with no_grad():
            for x, y in batches:
                total += float(language_model_loss(model, x, y, device).item()) * y.size
                count += y.size
    finally:
        model.train(was_training)
    return total / count


def perplexity(loss: float) -> float:
    """Return exp(loss): the effective number of equally likely next tokens (inf on overflow)."""
    try:
        return math.exp(loss)
    except OverflowError:
        return float("inf")
