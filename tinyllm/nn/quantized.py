"""A Linear layer that keeps its GGUF quantized blocks beside its float32 weight.

Decoding a token multiplies one row by every weight, so it is as fast as the weights can be read:
those steps (at most MAX_QUANTIZED_ROWS rows, nothing to differentiate, on the CPU) run the
quantized kernel on the blocks, ~5x fewer bytes than float32. Everything else (a prompt's prefill,
training) runs the float32 weight through BLAS, which wins once many rows share each weight.
The float32 weight stays the layer's parameter, so state dicts are those of a plain Linear.
"""

from __future__ import annotations

from tinyllm.autograd.grad_mode import is_grad_enabled
from tinyllm.autograd.tensor import Tensor
from tinyllm.kernels.qmatmul_reference import QuantizedWeight
from tinyllm.nn import functional as F
from tinyllm.nn.module import Module, Parameter
from tinyllm.ops.linalg import quantized_linear

MAX_QUANTIZED_ROWS = 4


def linear_or_quantized(x: Tensor, weight: Parameter, blocks: QuantizedWeight | None) -> Tensor:
    """Return x @ weight.T (..., out) for x (..., in): from the blocks when x has few rows."""
    rows = x.numel() // x.shape[-1] if x.ndim else 1
    decoding = rows <= MAX_QUANTIZED_ROWS and x.device == "cpu" and x.dtype == "float32"
    if blocks is not None and decoding and not (is_grad_enabled() and (x.requires_grad or weight.requires_grad)):
        return quantized_linear(x, blocks)
    return F.linear(x, weight)


class QuantizedLinear(Module):
    """y = x @ W.T (no bias), W (out_features, in_features) both as float32 and as GGUF blocks."""

    def __init__(self, weight: Parameter, blocks: QuantizedWeight) -> None:
        super().__init__()
        self.out_features, self.in_features = blocks.shape
        self.weight = weight
        self.blocks = blocks

    def forward(self, x: Tensor) -> Tensor:
        return linear_or_quantized(x, self.weight, self.blocks)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, blocks={self.blocks.kind}"
