"""Autograd: Tensor, Function, the backward walk, grad modes and gradcheck."""

from tinyllm.autograd.function import Function, sum_to
from tinyllm.autograd.grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from tinyllm.autograd.tensor import Tensor

__all__ = [
    "Function", "Tensor", "enable_grad", "inference_mode", "is_grad_enabled", "no_grad", "set_grad_enabled", "sum_to",
]  # fmt: skip
