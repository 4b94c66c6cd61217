"""GPT: a decoder-only Transformer language model (GPT-2's architecture, nanoGPT's layout).

    idx (B, T) -> token embedding + position encoding -> n_layer pre-LN blocks -> LayerNorm
               -> logits (B, T, vocab_size), the output projection tied to the token embedding

Parameter names follow GPT-2 without its `transformer.` prefix (`wte`, `wpe`, `h.0.ln_1`,
`h.0.attn.c_attn`, ..., `ln_f`), so a GPT-2 checkpoint maps onto this model name by name (GPT-2's
Conv1D weights are stored transposed). With tied embeddings there is no `lm_head` parameter.
"""

# ruff: noqa: N803, N806 - B, T, C, H, D: the field's names for tensor sizes (the house convention for model code)

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from tinyllm.autograd.tensor import Tensor
from tinyllm.backend import RANDOM
from tinyllm.config import MAX_CONTEXT, MAX_LAYERS, MAX_VOCAB_SIZE, MAX_WIDTH, JSONConfig, config_checks
from tinyllm.errors import ConfigError, DTypeError, ShapeError
from tinyllm.models.generation import GenerationMixin
from tinyllm.nn import functional as F
from tinyllm.nn.attention import KVCache
from tinyllm.nn.layers import Dropout, Embedding, LayerNorm, Linear
from tinyllm.nn.module import Module, ModuleList
from tinyllm.nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from tinyllm.nn.transformer import Block
from tinyllm.validate import check_bool, check_choice, check_float, check_int, check_token_ids

_INTEGER_DTYPES = ("int64", "int32", "int16", "int8", "uint8")


@dataclass
class GPTConfig(JSONConfig):
    """The shape of a GPT. `bias` applies to the Linear layers (LayerNorms always have one)."""

    vocab_size: int
    block_size: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0
    bias: bool = True
    activation: str = "gelu"  # "gelu" (exact, erf) or "gelu_tanh" (GPT-2's gelu_new)
    positional: str = "learned"  # "learned" (GPT-2's wpe) or "sinusoidal" (fixed)
    layer_norm_eps: float = 1e-5
    tie_embeddings: bool = True

    def __post_init__(self) -> None:
        with config_checks():
            check_int("GPTConfig.vocab_size", self.vocab_size, 1, MAX_VOCAB_SIZE)
            check_int("GPTConfig.block_size", self.block_size, 1, MAX_CONTEXT)
            check_int("GPTConfig.n_layer", self.n_layer, 1, MAX_LAYERS)
            check_int("GPTConfig.n_head", self.n_head, 1, MAX_WIDTH)
            check_int("GPTConfig.n_embd", self.n_embd, 1, MAX_WIDTH)
            check_float("GPTConfig.dropout", self.dropout, 0.0, below=1.0)
            check_bool("GPTConfig.bias", self.bias)
            check_choice("GPTConfig.activation", self.activation, ("gelu", "gelu_tanh"))
            check_choice("GPTConfig.positional", self.positional, ("learned", "sinusoidal"))
            check_float("GPTConfig.layer_norm_eps", self.layer_norm_eps, above=0.0)
            check_bool("GPTConfig.tie_embeddings", self.tie_embeddings)
        if self.n_embd % self.n_head:
            raise ConfigError(f"GPTConfig: n_embd {self.n_embd} must be divisible by n_head {self.n_head}")


class GPT(GenerationMixin, Module):
    """A GPT language model; `model(idx)` returns next-token logits at every position."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        C = config.n_embd
        self.wte = Embedding(config.vocab_size, C)
        if config.positional == "learned":
            self.wpe = LearnedPositionalEmbedding(config.block_size, C)
        else:
            self.wpe = SinusoidalPositionalEncoding(config.block_size, C)
        self.drop = Dropout(config.dropout)
        self.h = ModuleList(
            Block(C, config.n_head, config.bias, config.dropout, config.activation, config.layer_norm_eps)
            for _ in range(config.n_layer)
        )
        self.ln_f = LayerNorm(C, eps=config.layer_norm_eps)
        self.lm_head = None if config.tie_embeddings else Linear(C, config.vocab_size, bias=False)
        self._init_weights()

    def _init_weights(self) -> None:
        """Initialize as GPT-2/nanoGPT: weights N(0, 0.02), biases 0, LayerNorms (1, 0), and the
        projections into the residual stream (`c_proj`) N(0, 0.02 / sqrt(2 n_layer)), because each
        block adds two of them to the stream."""
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, param in self.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name == "ln_f.weight":
                param.array = param._backend.xp.ones_like(param.array)
            elif name.endswith(".bias"):
                param.array = param._backend.xp.zeros_like(param.array)
            else:
                std = residual_std if name.endswith("c_proj.weight") else 0.02
                param.array = param._backend.from_host(RANDOM.normal(param.shape, "float32") * std)

    # -- the forward pass -----------------------------------------------------------------------
    def forward(self, idx, cache: KVCache | None = None) -> Tensor:
        """Return logits (B, T, vocab_size) for token ids idx (B, T).

        With a `cache` (from `new_cache`), idx holds only the new tokens, placed after the
        `cache.position` tokens the cache already holds, and their keys and values are added;
        a cache with padding (`KVCache.set_padding`) gives each row positions from its first
        real token.
        """
        idx = self._check_input(idx, cache)
        B, T = idx.shape
        offset = 0 if cache is None else cache.position
        positions = None if cache is None else cache.positions(T)  # (B, T) or None
        tok = self.wte(idx)  # (B, T, C)
        if positions is None:
            pos = self.wpe(T, offset, device=tok.device)  # (T, C)
        elif isinstance(self.wpe, LearnedPositionalEmbedding):
            pos = self.wpe.lookup(positions)  # (B, T, C)
        else:
            pos = self.wpe.lookup(positions, device=tok.device)  # (B, T, C)
        x = self.drop(tok + pos)  # (B, T, C)
        for i, block in enumerate(self.h):
            x = block(x, cache=None if cache is None else cache[i])  # (B, T, C)
        x = self.ln_f(x)  # (B, T, C)
        head = self.wte.weight if self.lm_head is None else self.lm_head.weight  # (V, C)
        logits = F.linear(x.reshape(B * T, -1), head)  # (B*T, V)
        return logits.reshape(B, T, self.config.vocab_size)  # (B, T, V)

    def _check_input(self, idx, cache: KVCache | None) -> Tensor:
        """Return idx as an integer tensor (B, T), or raise a typed error that names the problem."""
        if not isinstance(idx, Tensor):
            idx = Tensor(idx, device=self.wte.weight.device)
        if idx.dtype not in _INTEGER_DTYPES:
            raise DTypeError(f"GPT input must be integer token ids, got dtype {idx.dtype}")
        if idx.ndim != 2:
            raise ShapeError(f"GPT input must have shape (batch, sequence), got shape {idx.shape}")
        B, T = idx.shape
        if T == 0:
            raise ShapeError("GPT input has an empty sequence (shape (B, 0))")
        held = 0 if cache is None else cache.position
        if held + T > self.config.block_size:
            if cache is None:
                raise ShapeError(f"sequence length {T} exceeds the model's block_size {self.config.block_size}")
            raise ShapeError(
                f"sequence length {held} cached + {T} new = {held + T} exceeds the model's block_size "
                f"{self.config.block_size}"
            )
        check_token_ids(idx.array, self.config.vocab_size, "GPT input")
        return idx

    # -- generation -----------------------------------------------------------------------------
    def new_cache(self, batch_size: int | None = None) -> KVCache:
        """Return an empty KV cache for this model, of block_size positions per layer (its
        storage is allocated at the first forward, for that forward's batch size)."""
        return KVCache(self.config.n_layer, max_len=self.config.block_size)

    # -- pretrained weights ---------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, directory) -> GPT:
        """Return a GPT with the weights of a Hugging Face GPT-2 directory (config.json and
        model.safetensors), via `tinyllm.models.gpt2.load_gpt2`."""
        from tinyllm.models.gpt2 import load_gpt2

        return load_gpt2(directory)

    def save_pretrained(self, directory) -> Path:
        """Write this model as a Hugging Face GPT-2 directory that transformers' `GPT2LMHeadModel`
        loads as the same network (via `tinyllm.models.gpt2.save_gpt2`); return the directory."""
        from tinyllm.models.gpt2 import save_gpt2

        return save_gpt2(self, directory)

    def num_parameters(self, exclude_positional: bool = False) -> int:
        """Return the number of parameters (tied weights counted once)."""
        total = super().num_parameters()
        if exclude_positional and isinstance(self.wpe, LearnedPositionalEmbedding):
            total -= self.wpe.weight.numel()
        return total

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config.to_dict().items())
