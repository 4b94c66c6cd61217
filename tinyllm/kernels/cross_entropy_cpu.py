"""Cross-entropy in one Numba pass per row, float32 and float64 on the CPU.

The reference (cross_entropy_reference.py) makes about twelve whole-array passes, each
allocating an (N, C) array: shift, exp, sum, log, compare with the targets, pick, and in backward
exp and the one-hot again. Here forward reads each row twice (its maximum, then the sum of
exponentials) and saves only the logits and two numbers per row (maximum, log-sum-exp of the shifted row); backward writes
softmax - onehot in a single pass over the logits.
"""

from __future__ import annotations

import math

from numba import njit

from tinyllm.backend import np

DEVICE, DTYPES = "cpu", ("float32", "float64")  # what `kernels.use` may force this kernel onto


@njit(cache=True)
def _forward(logits, targets, ignore_index, row_max, log_sum):
    rows, classes = logits.shape
    total = 0.0
    count = 0
    for r in range(rows):
        m = logits[r, 0]
        for c in range(1, classes):
            m = max(m, logits[r, c])
        row_max[r] = m
        if m == -np.inf:  # every logit -inf: log softmax is NaN, as in the reference
            log_sum[r] = np.nan
        else:
            sum_exp = 0.0
            for c in range(classes):
                sum_exp += math.exp(logits[r, c] - m)
            log_sum[r] = math.log(sum_exp)
        if targets[r] != ignore_index:
            # shifted first, as the reference: 1e4 + log(2) is not exact in float32
            total += log_sum[r] - (logits[r, targets[r]] - m)
            count += 1
    return total, count


@njit(cache=True)
def _backward(logits, targets, ignore_index, row_max, log_sum, scale, grad):
    rows, classes = logits.shape
    for r in range(rows):
        if targets[r] == ignore_index:
            grad[r, :] = 0.0
            continue
        for c in range(classes):
            grad[r, c] = math.exp((logits[r, c] - row_max[r]) - log_sum[r]) * scale
        grad[r, targets[r]] -= scale


def forward(logits, targets, ignore_index: int):
    """Return (mean cross-entropy as a 0-d array, saved) for logits (N, C) and targets (N,)."""
    logits = np.ascontiguousarray(logits)
    row_max = np.empty(logits.shape[0], dtype=logits.dtype)  # (N,)
    log_sum = np.empty(logits.shape[0], dtype=logits.dtype)  # (N,) log sum exp(logits - row_max)
    total, count = _forward(logits, targets, ignore_index, row_max, log_sum)
    count = max(count, 1)
    return np.asarray(total / count, dtype=logits.dtype), (logits, targets, ignore_index, row_max, log_sum, count)


def backward(saved, grad):
    """Return d loss / d logits (N, C) for the upstream gradient of the loss (a 0-d array)."""
    logits, targets, ignore_index, row_max, log_sum, count = saved
    out = np.empty_like(logits)
    _backward(logits, targets, ignore_index, row_max, log_sum, float(grad) / count, out)
    return out
