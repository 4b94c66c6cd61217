"""Cross-entropy of logits against integer targets in plain array code: the teaching version, the
oracle of `cross_entropy_cpu`, and the kernel on every backend the Numba one does not take.

forward(logits (N, C), targets (N,), ignore_index) returns (loss, saved): the loss is a 0-d array,
the mean over rows whose target is not ignore_index of -log softmax(logits)[target]. The
log-softmax subtracts each row's maximum first, so huge logits stay exact. backward(saved, grad)
returns d loss / d logits = (softmax(logits) - onehot(target)) * grad / count on counted rows.
"""

from __future__ import annotations

from builtins import max as builtins_max

from tinyllm.backend import backend_of


def forward(logits, targets, ignore_index: int):
    """Return (mean cross-entropy as a 0-d array, saved) for logits (N, C) and targets (N,)."""
    xp = backend_of(logits).xp
    n_classes = logits.shape[-1]
    valid = targets != ignore_index
    safe_targets = xp.where(valid, targets, xp.zeros_like(targets))
    shifted = logits - xp.max(logits, axis=-1, keepdims=True)
    log_probs = shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))  # (N, C)
    is_target = xp.arange(n_classes, dtype=targets.dtype)[None, :] == safe_targets[:, None]  # (N, C)
    count = builtins_max(int(xp.sum(xp.astype(valid, xp.int64))), 1)
    # pick with `where`, not by multiplying with the one-hot: a -inf logit times 0 is NaN
    picked = xp.sum(xp.where(is_target, log_probs, xp.zeros_like(log_probs)), axis=-1)  # (N,)
    loss = -xp.sum(xp.where(valid, picked, xp.zeros_like(picked))) / count
    return loss, (log_probs, xp.astype(is_target, logits.dtype), xp.astype(valid, logits.dtype), count)


def backward(saved, grad):
    """Return d loss / d logits (N, C) for the upstream gradient of the loss (a 0-d array)."""
    log_probs, onehot, valid, count = saved
    xp = backend_of(log_probs).xp
    return (xp.exp(log_probs) - onehot) * (valid[:, None] * (grad / count))
