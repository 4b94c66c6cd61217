"""Cross-entropy in one Numba pass per row, float32 and float64 on the CPU.

The reference (cross_entropy_reference.py) makes about twelve whole-array passes, each
allocating an (N, C) array: shift, exp, sum, log, compare with the targets, pick, and in backward
exp and the one-hot again. Here forward reads each row twice (its maximum, then the sum of
exponentials) and saves only the logits and two numbers per row (maximum, log-sum-exp of the
shifted row); backward writes softmax - onehot in a single pass over the logits.

The exponentials are `vector_exp.exp_rows`, a polynomial whose loops vectorize (`math.exp`
is a scalar libm call here), and in the one pool of a tuned process the rows are split in tasks
of about CHUNK logits over Numba's threads. On 2 threads (a 2-core AMD EPYC) the GPT preset's
768 x 65 logits took 0.19-0.23 ms forward and 0.12-0.21 ms backward with `math.exp` on one
thread, and take 0.08 and 0.04 ms; 256 rows of GPT-2's 50,257 classes went from 51-55 to 23-24 ms
forward and from 40-42 to 30 ms backward (most of which is the first touch of the new gradient).
"""

from __future__ import annotations

import math

from numba import njit, prange

from tinyllm.backend import np
from tinyllm.kernels import runtime
from tinyllm.kernels.vector_exp import constants, exp_rows, int_like

DEVICE, DTYPES = "cpu", ("float32", "float64")  # what `kernels.use` may force this kernel onto


CHUNK = 8192  # logits of one task (whole rows; at least one row)
PARALLEL_WORK = 2**15  # logits from which, in the one pool of a tuned process, the rows are split


@njit(cache=True)
def _forward_rows(logits, targets, ignore_index, row_max, log_sum, r0, r1, consts, int_like):
    """row_max and log_sum of rows r0:r1; return the sum of their losses and how many count."""
    classes = logits.shape[1]
    shifted = np.empty((r1 - r0, classes), dtype=logits.dtype)
    shift = np.zeros(r1 - r0, dtype=logits.dtype)  # the maximum is subtracted while copying
    powers = np.empty(classes, dtype=logits.dtype)
    for r in range(r0, r1):
        m = logits[r, 0]
        for c in range(1, classes):
            m = max(m, logits[r, c])
        row_max[r] = m
        for c in range(classes):
            shifted[r - r0, c] = logits[r, c] - m
    exp_rows(shifted, shift, consts, powers.view(int_like.dtype), powers)
    total = 0.0
    count = 0
    for r in range(r0, r1):
        m = row_max[r]
        if m == -np.inf or m == np.inf or m != m:  # log softmax is NaN, as in the reference
            log_sum[r] = np.nan
        else:
            sum_exp = 0.0
            for c in range(classes):
                sum_exp += shifted[r - r0, c]
            log_sum[r] = math.log(sum_exp)
        if targets[r] != ignore_index:
            # shifted first, as the reference: 1e4 + log(2) is not exact in float32
            total += log_sum[r] - (logits[r, targets[r]] - m)
            count += 1
    return total, count


@njit(parallel=True, cache=True)
def _forward(logits, targets, ignore_index, row_max, log_sum, chunk_rows, consts, int_like, totals, counts):
    """`_forward_rows` on chunk_rows rows a task; task c's sums in totals[c] and counts[c]."""
    rows = logits.shape[0]
    for c in prange(totals.shape[0]):
        totals[c], counts[c] = _forward_rows(
            logits, targets, ignore_index, row_max, log_sum, c * chunk_rows, min(rows, (c + 1) * chunk_rows),
            consts, int_like,
        )  # fmt: skip


@njit(parallel=True, cache=True)
def _backward(logits, targets, ignore_index, row_max, log_sum, scale, chunk_rows, consts, int_like, grad):
    """grad = (softmax(logits) - onehot(targets)) * scale, zero on ignored rows, chunk_rows a task."""
    rows, classes = logits.shape
    powers = np.empty((-(-rows // chunk_rows), classes), dtype=logits.dtype)
    for t in prange(powers.shape[0]):
        r0, r1 = t * chunk_rows, min(rows, (t + 1) * chunk_rows)
        for r in range(r0, r1):
            for c in range(classes):
                grad[r, c] = logits[r, c] - row_max[r]
        exp_rows(grad[r0:r1], log_sum[r0:r1], consts, powers[t].view(int_like.dtype), powers[t])
        for r in range(r0, r1):
            if log_sum[r] != log_sum[r]:  # NaN log softmax: NaN gradients, ignored or not, as in PyTorch
                grad[r, :] = np.nan
                continue
            if targets[r] == ignore_index:
                grad[r, :] = 0.0
                continue
            for c in range(classes):
                grad[r, c] *= scale
            grad[r, targets[r]] -= scale


_forward_serial = njit(cache=True)(_forward.py_func)  # prange runs as range: outside the one pool
_backward_serial = njit(cache=True)(_backward.py_func)


def _chunking(logits):
    """Return (rows per task, parallel) for these logits."""
    rows, classes = logits.shape
    parallel = logits.size >= PARALLEL_WORK and runtime.blas_on_numba_threads()
    return (max(1, CHUNK // max(classes, 1)) if parallel else max(rows, 1)), parallel


def forward(logits, targets, ignore_index: int):
    """Return (mean cross-entropy as a 0-d array, saved) for logits (N, C) and targets (N,)."""
    logits = np.ascontiguousarray(logits)
    row_max = np.empty(logits.shape[0], dtype=logits.dtype)  # (N,)
    log_sum = np.empty(logits.shape[0], dtype=logits.dtype)  # (N,) log sum exp(logits - row_max)
    chunk_rows, parallel = _chunking(logits)
    n_tasks = -(-logits.shape[0] // chunk_rows)
    totals, counts = np.zeros(n_tasks), np.zeros(n_tasks, dtype=np.int64)
    kernel = _forward if parallel else _forward_serial
    kernel(logits, targets, ignore_index, row_max, log_sum, chunk_rows, constants(logits.dtype),
           int_like(logits.dtype), totals, counts)  # fmt: skip
    total, count = float(totals.sum()), max(int(counts.sum()), 1)
    return np.asarray(total / count, dtype=logits.dtype), (logits, targets, ignore_index, row_max, log_sum, count)


def backward(saved, grad):
    """Return d loss / d logits (N, C) for the upstream gradient of the loss (a 0-d array)."""
    logits, targets, ignore_index, row_max, log_sum, count = saved
    out = np.empty_like(logits)
    chunk_rows, parallel = _chunking(logits)
    kernel = _backward if parallel else _backward_serial
    kernel(logits, targets, ignore_index, row_max, log_sum, logits.dtype.type(float(grad) / count), chunk_rows,
           constants(logits.dtype), int_like(logits.dtype), out)  # fmt: skip
    return out
