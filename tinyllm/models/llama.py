"""Llama: the decoder of Llama 2/3, SmolLM2 and most open models since 2023.

    ids (B, T) -> token embedding -> n_layer blocks -> RMSNorm -> logits (B, T, vocab_size)
    block:  x = x + attention(rms_norm(x))        (grouped-query attention, RoPE on q and k)
            x = x + swiglu_mlp(rms_norm(x))       (down(silu(gate(x)) * up(x)))

Differences from GPT-2: RMSNorm instead of LayerNorm, no biases, rotary position embeddings
instead of learned ones, fewer key/value heads than query heads (each key/value head serves
n_head / n_kv_head query heads), and a gated MLP.

At batch 1 decoding is a chain of (1, C) @ (C, N) products, so per-op overhead counts: the
query, key and value projections are one matrix (`qkv_proj`), and gate and up are one matrix
(`gate_up_proj`); grouped-query attention reshapes the queries of a group next to each other
instead of copying the keys and values once per query head.

`Llama.from_gguf(path)` reads a llama.cpp GGUF file (weights dequantized to float32) and
returns the model with its tokenizer as `model.tokenizer`.
"""

# ruff: noqa: N803, N806 - B, T, C, H, D: the field's names for tensor sizes (STYLE.md)
from __future__ import annotations

import math
from dataclasses import dataclass

from tinyllm.autograd.function import Function
from tinyllm.autograd.tensor import Tensor
from tinyllm.backend import np
from tinyllm.config import JSONConfig
from tinyllm.errors import ConfigError, DTypeError, OutOfRangeError, ShapeError
from tinyllm.models.generation import GenerationMixin
from tinyllm.nn import functional as F
from tinyllm.nn.attention import DotProductAttention, KVCache, LayerKVCache
from tinyllm.nn.layers import Embedding, Linear, RMSNorm
from tinyllm.nn.module import Module, ModuleList
from tinyllm.nn.rope import RotaryEmbedding

_INTEGER_DTYPES = ("int64", "int32", "int16", "int8", "uint8")


@dataclass
class LlamaConfig(JSONConfig):
    """Sizes of a Llama model; SmolLM2-135M: 30 layers, 576 wide, 9 query and 3 key/value heads."""

    vocab_size: int
    block_size: int  # the context length: positions the model may see
    n_layer: int
    n_embd: int
    n_head: int
    n_kv_head: int
    ffn_dim: int
    head_dim: int | None = None  # default n_embd // n_head
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True

    def __post_init__(self) -> None:
        if self.head_dim is None:
            self.head_dim = self.n_embd // self.n_head
        for name in ("vocab_size", "block_size", "n_layer", "n_embd", "n_head", "n_kv_head", "ffn_dim", "head_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"LlamaConfig.{name} must be a positive int, got {value!r}")
        if self.n_head % self.n_kv_head:
            raise ConfigError(f"n_head {self.n_head} is not a multiple of n_kv_head {self.n_kv_head}")
        if self.head_dim % 2:
            raise ConfigError(f"RoPE needs an even head_dim, got {self.head_dim}")


class GroupedQueryAttention(Module):
    """Causal self-attention with n_head query heads sharing n_kv_head key/value heads."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        H, H_kv, D = self.n_head, self.n_kv_head, self.head_dim
        self.qkv_proj = Linear(config.n_embd, (H + 2 * H_kv) * D, bias=False)
        self.o_proj = Linear(H * D, config.n_embd, bias=False)
        self.attend = DotProductAttention()

    def forward(self, x: Tensor, rope: RotaryEmbedding, start: int, cache: LayerKVCache | None) -> Tensor:
        """Return the attention output (B, T, C) for x (B, T, C) at positions start .. start + T - 1."""
        B, T, C = x.shape
        H, H_kv, D = self.n_head, self.n_kv_head, self.head_dim
        G = H // H_kv  # query heads per key/value head
        qkv = self.qkv_proj(x).reshape(B, T, H + 2 * H_kv, D).transpose(1, 2)  # (B, H + 2 H_kv, T, D)
        qk = rope(qkv[:, : H + H_kv], start)  # (B, H + H_kv, T, D): queries and keys rotated at once
        q, k = qk[:, :H], qk[:, H:]  # (B, H, T, D), (B, H_kv, T, D)
        v = qkv[:, H + H_kv :]  # (B, H_kv, T, D)
        if cache is not None:
            k, v = cache.append(k, v)  # each (B, H_kv, T_total, D)
        T_total = k.shape[2]
        # query head h uses key/value head h // G: put the G queries of a group in one row block
        q = q.reshape(B, H_kv, G * T, D)  # (B, H_kv, G*T, D)
        if T == 1:
            y = _attend_all(q, k, v)  # (B, H_kv, G, D)
        else:
            mask = _grouped_causal_mask(x._backend, G, T, T_total)  # (G*T, T_total)
            y = self.attend(q, k, v, mask)  # (B, H_kv, G*T, D)
        y = y.reshape(B, H, T, D).transpose(1, 2).reshape(B, T, H * D)  # (B, T, H*D)
        return self.o_proj(y)  # (B, T, C)

    def extra_repr(self) -> str:
        return f"n_head={self.n_head}, n_kv_head={self.n_kv_head}, head_dim={self.head_dim}"


def _attend_all(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Return softmax(q k^T / sqrt(D)) v, every query seeing every key: (B, H, Tq, D).

    Decoding one token gives a few query rows; for those the fused attention kernel's blocking
    (and thread start-up) costs more than the small (Tq, Tk) score matrix it avoids.
    """
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))  # (B, H, Tq, Tk)
    return F.softmax(scores, axis=-1) @ v  # (B, H, Tq, D)


def _grouped_causal_mask(backend, groups: int, T_new: int, T_total: int) -> Tensor:
    """Return the bool (groups*T_new, T_total) mask: row g*T_new + i is new query i (at position
    T_total - T_new + i), which may see keys j <= its position."""
    xp = backend.xp
    offset = T_total - T_new
    allowed = xp.arange(T_total)[None, :] <= (xp.arange(T_new) + offset)[:, None]  # (T_new, T_total)
    return Tensor._wrap(xp.tile(allowed, (groups, 1)), backend, False, None)  # (G*T_new, T_total)


class GatedSiLU(Function):
    """silu(gate) * up, for gate_up = [gate | up] along the last axis: one op instead of four."""

    def forward(self, gate_up):
        xp = self.xp
        half = gate_up.shape[-1] // 2
        gate, up = gate_up[..., :half], gate_up[..., half:]  # each (..., F)
        sigmoid = 0.5 + 0.5 * xp.tanh(0.5 * gate)  # (..., F), no overflow for large |gate|
        self.gate, self.up, self.sigmoid = gate, up, sigmoid
        return gate * sigmoid * up  # (..., F)

    def backward(self, grad):
        gate, up, sigmoid = self.gate, self.up, self.sigmoid
        grad_gate = grad * up * sigmoid * (1 + gate * (1 - sigmoid))  # d silu / d gate
        grad_up = grad * gate * sigmoid
        return self.xp.concat([grad_gate, grad_up], axis=-1)  # (..., 2F)


class SwiGLU(Module):
    """The gated MLP: down(silu(gate(x)) * up(x)), gate and up computed as one matrix."""

    def __init__(self, n_embd: int, ffn_dim: int) -> None:
        super().__init__()
        self.ffn_dim = ffn_dim
        self.gate_up_proj = Linear(n_embd, 2 * ffn_dim, bias=False)
        self.down_proj = Linear(ffn_dim, n_embd, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate_up = self.gate_up_proj(x)  # (B, T, 2F)
        return self.down_proj(GatedSiLU.apply(gate_up))  # (B, T, C)


class LlamaBlock(Module):
    """x + attention(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(config.n_embd, config.norm_eps)
        self.attn = GroupedQueryAttention(config)
        self.mlp_norm = RMSNorm(config.n_embd, config.norm_eps)
        self.mlp = SwiGLU(config.n_embd, config.ffn_dim)

    def forward(self, x: Tensor, rope: RotaryEmbedding, start: int, cache: LayerKVCache | None) -> Tensor:
        x = x + self.attn(self.attn_norm(x), rope, start, cache)  # (B, T, C)
        return x + self.mlp(self.mlp_norm(x))  # (B, T, C)


class Llama(GenerationMixin, Module):
    """A Llama-architecture decoder: `model(ids, cache=None)` -> logits (B, T, vocab_size)."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = Embedding(config.vocab_size, config.n_embd)
        self.layers = ModuleList([LlamaBlock(config) for _ in range(config.n_layer)])
        self.norm = RMSNorm(config.n_embd, config.norm_eps)
        self.lm_head = None if config.tie_embeddings else Linear(config.n_embd, config.vocab_size, bias=False)
        self.rope = RotaryEmbedding(config.head_dim, config.block_size, config.rope_base)
        self.tokenizer = None  # set by from_gguf

    def forward(self, ids, cache: KVCache | None = None) -> Tensor:
        """Return logits (B, T, vocab_size) for token ids (B, T).

        With a `cache` (from `new_cache`), ids hold only the new tokens, placed after the
        `cache.position` tokens the cache holds; their keys and values are added to it.
        """
        ids = self._check_input(ids, cache)
        B, T = ids.shape
        start = 0 if cache is None else cache.position
        x = self.embed(ids)  # (B, T, C)
        for i, layer in enumerate(self.layers):
            x = layer(x, self.rope, start, None if cache is None else cache[i])  # (B, T, C)
        x = self.norm(x)  # (B, T, C)
        head = self.embed.weight if self.lm_head is None else self.lm_head.weight  # (V, C)
        return F.linear(x, head)  # (B, T, V)

    def _check_input(self, ids, cache: KVCache | None) -> Tensor:
        """Return ids as an integer tensor (B, T), or raise a typed error naming the problem."""
        if not isinstance(ids, Tensor):
            ids = Tensor(ids, device=self.embed.weight.device)
        if ids.dtype not in _INTEGER_DTYPES:
            raise DTypeError(f"Llama input must be integer token ids, got dtype {ids.dtype}")
        if ids.ndim != 2:
            raise ShapeError(f"Llama input must have shape (batch, sequence), got shape {ids.shape}")
        T = ids.shape[1]
        if T == 0:
            raise ShapeError("Llama input has an empty sequence (shape (B, 0))")
        held = 0 if cache is None else cache.position
        if held + T > self.config.block_size:
            raise ShapeError(
                f"sequence of {held} cached + {T} new = {held + T} tokens exceeds the model's context "
                f"length (block_size) {self.config.block_size}"
            )
        xp = ids._backend.xp
        low, high = int(xp.min(ids.data)), int(xp.max(ids.data))
        if low < 0 or high >= self.config.vocab_size:
            bad = high if high >= self.config.vocab_size else low
            raise OutOfRangeError(f"token id {bad} is out of range for vocab_size {self.config.vocab_size}")
        return ids

    # -- generation -----------------------------------------------------------------------------
    def new_cache(self, batch_size: int | None = None) -> KVCache:
        """Return an empty KV cache. It grows by doubling (a context of 8192 positions would
        reserve hundreds of MB up front), and `forward` checks the context length."""
        return KVCache(self.config.n_layer, max_len=None)

    # -- pretrained weights ---------------------------------------------------------------------
    @classmethod
    def from_gguf(cls, path) -> Llama:
        """Return the model stored in a llama.cpp GGUF file, weights dequantized to float32, with
        `model.tokenizer` built from the file's metadata. ConfigError if the file is missing, of
        another architecture or quantized in a way we cannot read."""
        from tinyllm.io.gguf import read_gguf
        from tinyllm.tokenizers.gguf_tokenizer import GGUFTokenizer

        gguf_file = read_gguf(path, architectures=("llama",))
        config = config_from_gguf(gguf_file)
        model = cls(config)
        model.load_state_dict(state_dict_from_gguf(gguf_file, config))
        model.tokenizer = GGUFTokenizer.from_gguf(gguf_file)
        return model.eval()

    def extra_repr(self) -> str:
        c = self.config
        return f"n_layer={c.n_layer}, n_embd={c.n_embd}, n_head={c.n_head}, n_kv_head={c.n_kv_head}"


def config_from_gguf(gguf_file) -> LlamaConfig:
    """Return the LlamaConfig that a GGUF file's `llama.*` metadata describes."""
    arch = gguf_file.architecture
    n_embd = int(gguf_file.require(f"{arch}.embedding_length"))
    n_head = int(gguf_file.require(f"{arch}.attention.head_count"))
    vocab_size = gguf_file.field(f"{arch}.vocab_size")
    if vocab_size is None:
        vocab_size = len(gguf_file.require("tokenizer.ggml.tokens"))
    head_dim = gguf_file.field(f"{arch}.attention.key_length") or gguf_file.field(f"{arch}.rope.dimension_count")
    return LlamaConfig(
        vocab_size=int(vocab_size),
        block_size=int(gguf_file.require(f"{arch}.context_length")),
        n_layer=int(gguf_file.require(f"{arch}.block_count")),
        n_embd=n_embd,
        n_head=n_head,
        n_kv_head=int(gguf_file.field(f"{arch}.attention.head_count_kv", n_head)),
        ffn_dim=int(gguf_file.require(f"{arch}.feed_forward_length")),
        head_dim=int(head_dim) if head_dim else n_embd // n_head,
        rope_base=float(gguf_file.field(f"{arch}.rope.freq_base", 10000.0)),
        norm_eps=float(gguf_file.require(f"{arch}.attention.layer_norm_rms_epsilon")),
        tie_embeddings=not gguf_file.has_tensor("output.weight"),
    )


def unpermute_rotary_rows(weight, n_heads: int):
    """Return W_q or W_k (n_heads * D, C) with each head's rows reordered from the "adjacent pairs"
    RoPE layout of GGUF files (rows 2i, 2i+1 form a pair) to the "half" layout (rows i, i + D/2)."""
    rows, cols = weight.shape
    D = rows // n_heads
    by_pair = weight.reshape(n_heads, D // 2, 2, cols)  # (heads, pair i, member, C)
    return by_pair.transpose(0, 2, 1, 3).reshape(rows, cols)  # (heads, member, pair i, C) -> rows


def state_dict_from_gguf(gguf_file, config: LlamaConfig) -> dict:
    """Return {parameter name: float32 array} for a Llama from the tensors of a GGUF file."""
    state = {
        "embed.weight": gguf_file.tensor("token_embd.weight"),
        "norm.weight": gguf_file.tensor("output_norm.weight"),
    }
    expected = {"embed.weight": (config.vocab_size, config.n_embd)}
    if not config.tie_embeddings:
        state["lm_head.weight"] = gguf_file.tensor("output.weight")
    for i in range(config.n_layer):
        prefix, name = f"blk.{i}.", f"layers.{i}."
        q = unpermute_rotary_rows(gguf_file.tensor(prefix + "attn_q.weight"), config.n_head)
        k = unpermute_rotary_rows(gguf_file.tensor(prefix + "attn_k.weight"), config.n_kv_head)
        v = gguf_file.tensor(prefix + "attn_v.weight")
        state[name + "attn.qkv_proj.weight"] = np.concatenate([q, k, v], axis=0)
        state[name + "attn.o_proj.weight"] = gguf_file.tensor(prefix + "attn_output.weight")
        gate, up = gguf_file.tensor(prefix + "ffn_gate.weight"), gguf_file.tensor(prefix + "ffn_up.weight")
        state[name + "mlp.gate_up_proj.weight"] = np.concatenate([gate, up], axis=0)
        state[name + "mlp.down_proj.weight"] = gguf_file.tensor(prefix + "ffn_down.weight")
        state[name + "attn_norm.weight"] = gguf_file.tensor(prefix + "attn_norm.weight")
        state[name + "mlp_norm.weight"] = gguf_file.tensor(prefix + "ffn_norm.weight")
    for key, shape in expected.items():
        if state[key].shape != shape:
            raise ConfigError(f"GGUF tensor for {key} has shape {state[key].shape}, the metadata implies {shape}")
    return state
