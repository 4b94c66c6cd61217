"""Autograd: Tensor, Function, the backward walk, grad modes and gradcheck."""

from tinyllm.autograd.function import Function, sum_to
from tinyllm.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad
from tinyllm.autograd.tensor import Tensor

__all__ = ["Function", "Tensor", "enable_grad", "is_grad_enabled", "no_grad", "sum_to"]
