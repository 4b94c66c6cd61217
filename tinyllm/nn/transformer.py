"""The Transformer block of GPT: a position-wise MLP and the pre-LayerNorm residual block.

    x = x + attn(ln_1(x))
    x = x + mlp(ln_2(x))

Normalizing before each sub-layer (GPT-2) instead of after (the original Transformer) keeps a
clean residual path from the embeddings to the output, which makes deep stacks train without
warm-up tricks. Parameter names follow GPT-2 (`ln_1`, `attn`, `ln_2`, `mlp.c_fc`, `mlp.c_proj`).
"""

from __future__ import annotations

from tinyllm.autograd.tensor import Tensor
from tinyllm.nn import functional as F
from tinyllm.nn.attention import CausalSelfAttention, LayerKVCache
from tinyllm.nn.layers import Dropout, LayerNorm, Linear
from tinyllm.nn.module import Module

_GELU_APPROXIMATION = {"gelu": "none", "gelu_tanh": "tanh"}


class MLP(Module):
    """Return c_proj(gelu(c_fc(x))): widen to `hidden` (4 n_embd in GPT), apply GELU, project back."""

    def __init__(self, n_embd: int, hidden: int, bias: bool = True, activation: str = "gelu", dropout: float = 0.0):
        super().__init__()
        if activation not in _GELU_APPROXIMATION:
            raise ValueError(f"activation must be one of {sorted(_GELU_APPROXIMATION)}, got {activation!r}")
        self.activation = activation
        self.c_fc = Linear(n_embd, hidden, bias=bias)
        self.c_proj = Linear(hidden, n_embd, bias=bias)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """Return the MLP of x (..., C), same shape."""
        shape = x.shape
        h = self.c_fc(x.reshape(-1, shape[-1]))  # (N, 4C)
        h = F.gelu(h, _GELU_APPROXIMATION[self.activation])  # (N, 4C)
        out = self.c_proj(h)  # (N, C)
        return self.dropout(out).reshape(shape)  # (..., C)

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}"


class Block(Module):
    """One pre-LN Transformer block: attention and MLP, each on a normalized input, each added
    back to the residual stream."""

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        bias: bool = True,
        dropout: float = 0.0,
        activation: str = "gelu",
        layer_norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.ln_1 = LayerNorm(n_embd, eps=layer_norm_eps)
        self.attn = CausalSelfAttention(n_embd, n_head, bias=bias, dropout=dropout)
        self.ln_2 = LayerNorm(n_embd, eps=layer_norm_eps)
        self.mlp = MLP(n_embd, 4 * n_embd, bias=bias, activation=activation, dropout=dropout)

    def forward(self, x: Tensor, cache: LayerKVCache | None = None) -> Tensor:
        """Return the block's output (B, T, C) for x (B, T, C)."""
        x = x + self.attn(self.ln_1(x), cache=cache)  # (B, T, C)
        return x + self.mlp(self.ln_2(x))  # (B, T, C)
