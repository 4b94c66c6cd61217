"""Loss modules, PyTorch's: CrossEntropyLoss, NLLLoss, MSELoss (each a call to its F function)."""

from __future__ import annotations

from tinyllm.autograd.tensor import Tensor
from tinyllm.nn import functional as F
from tinyllm.nn.module import Module
from tinyllm.validate import check_choice, check_float


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__()
        F._unsupported(type(self).__name__, size_average=(size_average, None), reduce=(reduce, None))
        self.reduction = check_choice("reduction", reduction, F.REDUCTIONS)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class CrossEntropyLoss(_Loss):
    """Return F.cross_entropy(input, target) with the weights, ignore_index, reduction and label
    smoothing given here: input (N, C, ...) logits, target (N, ...) classes or probabilities."""

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average=None,
        ignore_index: int = -100,
        reduce=None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.label_smoothing = check_float("label_smoothing", label_smoothing, 0.0, 1.0)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002 - PyTorch's names
        return F.cross_entropy(
            input,
            target,
            self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class NLLLoss(_Loss):
    """Return F.nll_loss(input, target): input (N, C, ...) log-probabilities, target (N, ...) classes."""

    def __init__(
        self, weight: Tensor | None = None, size_average=None, ignore_index: int = -100, reduce=None, reduction="mean"
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        return F.nll_loss(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class MSELoss(_Loss):
    """Return F.mse_loss(input, target): the mean (or sum, or each) squared difference."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        return F.mse_loss(input, target, reduction=self.reduction)
