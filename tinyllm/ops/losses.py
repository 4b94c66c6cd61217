"""Cross-entropy, fused with its log-softmax so that huge logits stay exact."""

from __future__ import annotations

from tinyllm.autograd.function import Function
from tinyllm.autograd.tensor import Tensor
from tinyllm.errors import DTypeError, OutOfRangeError, ShapeError
from tinyllm.kernels import choose


class CrossEntropy(Function):
    """Mean over non-ignored rows of -log softmax(logits)[target]; logits (N, C), targets (N,).

    The math is in kernels/cross_entropy_reference.py; a Numba kernel runs it in one pass per row
    on the CPU.
    """

    def forward(self, logits, targets, ignore_index):
        self.kernel = choose("cross_entropy", logits)
        loss, self.saved = self.kernel.forward(logits, targets, ignore_index)
        return loss

    def backward(self, grad):
        return self.kernel.backward(self.saved, grad)


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
