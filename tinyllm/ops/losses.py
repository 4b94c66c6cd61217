"""Cross-entropy, fused with its log-softmax so that huge logits stay exact."""

from __future__ import annotations

from builtins import max as builtins_max

from tinyllm.autograd.function import Function
from tinyllm.autograd.tensor import Tensor
from tinyllm.errors import DTypeError, OutOfRangeError, ShapeError


class CrossEntropy(Function):
    """Mean over non-ignored rows of -log softmax(logits)[target]; logits (N, C), targets (N,)."""

    def forward(self, logits, targets, ignore_index):
        xp = self.xp
        n_classes = logits.shape[-1]
        valid = targets != ignore_index
        safe_targets = xp.where(valid, targets, xp.zeros_like(targets))
        shifted = logits - xp.max(logits, axis=-1, keepdims=True)
        log_probs = shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))
        is_target = xp.arange(n_classes, dtype=targets.dtype)[None, :] == safe_targets[:, None]
        self.onehot = xp.astype(is_target, logits.dtype)
        self.valid = xp.astype(valid, logits.dtype)
        self.count = builtins_max(int(xp.sum(xp.astype(valid, xp.int64))), 1)
        self.log_probs = log_probs
        # pick with `where`, not by multiplying with the one-hot: a -inf logit times 0 is NaN
        picked = xp.sum(xp.where(is_target, log_probs, xp.zeros_like(log_probs)), axis=-1)
        return -xp.sum(xp.where(valid, picked, xp.zeros_like(picked))) / self.count

    def backward(self, grad):
        xp = self.xp
        probs = xp.exp(self.log_probs)
        return (probs - self.onehot) * (self.valid[:, None] * (grad / self.count))


def cross_entropy(logits: Tensor, targets: Tensor, ignore_index: int = -100) -> Tensor:
    """Return the mean cross-entropy of logits (..., C) against integer targets (...).

    Targets equal to ignore_index count neither in the sum nor in the mean.
    """
    if targets.dtype not in ("int64", "int32", "int16", "int8", "uint8"):
        raise DTypeError(f"cross_entropy targets must be integers, got dtype {targets.dtype}")
    if logits.shape[:-1] != targets.shape:
        raise ShapeError(f"cross_entropy: logits {logits.shape} do not fit targets {targets.shape}")
    n_classes = logits.shape[-1]
    flat_logits = logits.reshape(-1, n_classes)
    flat_targets = targets.reshape(-1).long()
    xp = targets._backend.xp
    valid = flat_targets.array != ignore_index
    if bool(xp.any(valid & ((flat_targets.array < 0) | (flat_targets.array >= n_classes)))):
        raise OutOfRangeError(f"cross_entropy: a target is outside [0, {n_classes}) and is not ignore_index")
    return CrossEntropy.apply(flat_logits, flat_targets, ignore_index=ignore_index)
