"""Learning-rate schedule: linear warmup, then cosine decay to a floor (nanoGPT's `get_lr`)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class WarmupCosine:
    """lr(step) rises linearly for warmup_iters, falls along a half cosine until decay_iters, then stays at min_lr."""

    max_lr: float
    warmup_iters: int
    decay_iters: int
    min_lr: float = 0.0

    def __call__(self, step: int) -> float:
        """Return the learning rate of step (counted from 0)."""
        if step < self.warmup_iters:
            return self.max_lr * (step + 1) / (self.warmup_iters + 1)
        if step >= self.decay_iters:
            return self.min_lr
        progress = (step - self.warmup_iters) / max(1, self.decay_iters - self.warmup_iters)
        return self.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (self.max_lr - self.min_lr)


def set_lr(optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
