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
returns the model with its tokenizer as `model.tokenizer`; with `quantized=True` its projections
also keep the file's Q4_1/Q8_0 blocks, which decoding steps multiply directly (nn/quantized.py).
"""

# ruff: noqa: N803, N806 - B, T, C, H, D: the field's names for tensor sizes (the house convention for model code)
from __future__ import annotations

from dataclasses import dataclass

from tinyllm.autograd.function import Function
from tinyllm.autograd.tensor import Tensor
from tinyllm.backend import np
from tinyllm.config import MAX_CONTEXT, MAX_FFN, MAX_LAYERS, MAX_VOCAB_SIZE, MAX_WIDTH, JSONConfig, config_checks
from tinyllm.errors import ConfigError, DTypeError, ShapeError
from tinyllm.models.generation import GenerationMixin
from tinyllm.nn.attention import DotProductAttention, KVCache, LayerKVCache, padded_causal_mask
from tinyllm.nn.layers import Embedding, Linear, RMSNorm
from tinyllm.nn.module import Module, ModuleList
from tinyllm.nn.quantized import QuantizedLinear, linear_or_quantized
from tinyllm.nn.rope import RotaryEmbedding
from tinyllm.validate import check_bool, check_float, check_int, check_token_ids

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
        with config_checks():
            check_int("LlamaConfig.vocab_size", self.vocab_size, 1, MAX_VOCAB_SIZE)
            check_int("LlamaConfig.block_size", self.block_size, 1, MAX_CONTEXT)
            check_int("LlamaConfig.n_layer", self.n_layer, 1, MAX_LAYERS)
            check_int("LlamaConfig.n_embd", self.n_embd, 1, MAX_WIDTH)
            check_int("LlamaConfig.n_head", self.n_head, 1, MAX_WIDTH)
            check_int("LlamaConfig.n_kv_head", self.n_kv_head, 1, MAX_WIDTH)
            check_int("LlamaConfig.ffn_dim", self.ffn_dim, 1, MAX_FFN)
            if self.head_dim is None:
                self.head_dim = self.n_embd // self.n_head
            check_int("LlamaConfig.head_dim", self.head_dim, 1, MAX_WIDTH)
            check_float("LlamaConfig.rope_base", self.rope_base, above=1.0)
            check_float("LlamaConfig.norm_eps", self.norm_eps, above=0.0)
            check_bool("LlamaConfig.tie_embeddings", self.tie_embeddings)
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

    def forward(
        self, x: Tensor, rope: RotaryEmbedding, start: int, cache: LayerKVCache | None, positions=None
    ) -> Tensor:
        """Return the attention output (B, T, C) for x (B, T, C) at positions start .. start + T - 1
        (or at the host positions (B, T) of a left-padded batch, whose padding the cache marks)."""
        B, T, C = x.shape
        H, H_kv, D = self.n_head, self.n_kv_head, self.head_dim
        G = H // H_kv  # query heads per key/value head
        qkv = self.qkv_proj(x).reshape(B, T, H + 2 * H_kv, D).transpose(1, 2)  # (B, H + 2 H_kv, T, D)
        qk = rope(qkv[:, : H + H_kv], start, positions)  # (B, H + H_kv, T, D): queries and keys rotated at once
        q, k = qk[:, :H], qk[:, H:]  # (B, H, T, D), (B, H_kv, T, D)
        v = qkv[:, H + H_kv :]  # (B, H_kv, T, D)
        if cache is not None:
            k, v = cache.append(k, v)  # each (B, H_kv, T_total, D)
        T_total = k.shape[2]
        # query head h uses key/value head h // G: put the G queries of a group in one row block
        q = q.reshape(B, H_kv, G * T, D)  # (B, H_kv, G*T, D)
        if cache is not None and cache.padding is not None:
            mask = padded_causal_mask(x._backend, cache.padding, T, T_total, G)  # (B, 1, G*T, T_total)
            y = self.attend(q, k, v, mask)  # (B, H_kv, G*T, D)
        elif T == 1:  # the new token's G queries see every key
            y = self.attend(q, k, v)  # (B, H_kv, G, D)
        else:
            mask = _grouped_causal_mask(x._backend, G, T, T_total)  # (G*T, T_total)
            y = self.attend(q, k, v, mask)  # (B, H_kv, G*T, D)
        y = y.reshape(B, H, T, D).transpose(1, 2).reshape(B, T, H * D)  # (B, T, H*D)
        return self.o_proj(y)  # (B, T, C)

    def extra_repr(self) -> str:
        return f"n_head={self.n_head}, n_kv_head={self.n_kv_head}, head_dim={self.head_dim}"


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

    def forward(
        self, x: Tensor, rope: RotaryEmbedding, start: int, cache: LayerKVCache | None, positions=None
    ) -> Tensor:
        x = x + self.attn(self.attn_norm(x), rope, start, cache, positions)  # (B, T, C)
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
        self.head_blocks = None  # the tied head's quantized blocks, set by from_gguf(quantized=True)

    def forward(self, ids, cache: KVCache | None = None) -> Tensor:
        """Return logits (B, T, vocab_size) for token ids (B, T).

        With a `cache` (from `new_cache`), ids hold only the new tokens, placed after the
        `cache.position` tokens the cache holds; their keys and values are added to it. A cache
        with padding (`KVCache.set_padding`) gives each row RoPE positions from its first real token.
        """
        ids = self._check_input(ids, cache)
        B, T = ids.shape
        start = 0 if cache is None else cache.position
        positions = None if cache is None else cache.positions(T)  # (B, T) or None
        x = self.embed(ids)  # (B, T, C)
        for i, layer in enumerate(self.layers):
            x = layer(x, self.rope, start, None if cache is None else cache[i], positions)  # (B, T, C)
        x = self.norm(x)  # (B, T, C)
        if self.lm_head is not None:
            return self.lm_head(x)  # (B, T, V)
        return linear_or_quantized(x, self.embed.weight, self.head_blocks)  # (B, T, V)

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
        check_token_ids(ids.array, self.config.vocab_size, "Llama input")
        return ids

    # -- generation -----------------------------------------------------------------------------
    def new_cache(self, batch_size: int | None = None) -> KVCache:
        """Return an empty KV cache. It grows by doubling (a context of 8192 positions would
        reserve hundreds of MB up front), and `forward` checks the context length."""
        return KVCache(self.config.n_layer, max_len=None)

    # -- pretrained weights ---------------------------------------------------------------------
    @classmethod
    def from_gguf(cls, path, quantized: bool = False) -> Llama:
        """Return the model stored in a llama.cpp GGUF file, weights dequantized to float32, with
        `model.tokenizer` built from the file's metadata. ConfigError if the file is missing, of
        another architecture or quantized in a way we cannot read. quantized: the projections
        also keep the file's Q8_0/Q4_1 blocks, for decoding (see nn/quantized.py)."""
        from tinyllm.io.gguf import read_gguf
        from tinyllm.tokenizers.gguf_tokenizer import GGUFTokenizer

        gguf_file = read_gguf(path, architectures=("llama",))
        config = config_from_gguf(gguf_file)
        _check_parameter_count(gguf_file, config)  # before anything the metadata sizes is allocated
        model = cls(config)
        model.load_state_dict(state_dict_from_gguf(gguf_file, config))
        if quantized:
            attach_quantized_blocks(model, gguf_file)
        model.tokenizer = GGUFTokenizer.from_gguf(gguf_file)
        return model.eval()

    def extra_repr(self) -> str:
        c = self.config
        return f"n_layer={c.n_layer}, n_embd={c.n_embd}, n_head={c.n_head}, n_kv_head={c.n_kv_head}"


def config_from_gguf(gguf_file) -> LlamaConfig:
    """Return the LlamaConfig that a GGUF file's `llama.*` metadata describes (ConfigError naming
    the file for a value of the wrong kind or out of bounds)."""
    try:
        return _config_from_gguf(gguf_file)
    except (TypeError, ValueError, OverflowError) as error:
        if isinstance(error, ConfigError):
            raise ConfigError(f"GGUF file {gguf_file.path.name}: {error}") from None
        raise ConfigError(
            f"GGUF file {gguf_file.path.name}: a model size in its metadata is malformed ({error})"
        ) from None


def _check_parameter_count(gguf_file, config: LlamaConfig) -> None:
    """Raise ConfigError if the metadata describes more weights than the file's tensors hold."""
    C, H, H_kv, D, F = config.n_embd, config.n_head, config.n_kv_head, config.head_dim, config.ffn_dim
    per_layer = C * (H + 2 * H_kv) * D + H * D * C + 3 * C * F + 2 * C
    needed = config.vocab_size * C * (1 if config.tie_embeddings else 2) + config.n_layer * per_layer + C
    held = sum(gguf_file.tensor_elements.values())
    if needed > held:
        raise ConfigError(
            f"GGUF file {gguf_file.path.name}: its metadata describes a model of {needed} weights, "
            f"but its tensors hold {held}"
        )


def _config_from_gguf(gguf_file) -> LlamaConfig:
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


def attach_quantized_blocks(model: Llama, gguf_file) -> None:
    """Give each projection of the model (and the head) the GGUF file's blocks of its weight,
    rows in the order of the float32 weight; projections stored in other encodings stay Linear."""
    from tinyllm.kernels.qmatmul_reference import BLOCK_BYTES, QuantizedWeight

    def blocks(*names: str, rotary: bool = False):
        kinds_and_bytes = [gguf_file.raw_blocks(name) for name in names]
        if any(kind not in BLOCK_BYTES or kind != kinds_and_bytes[0][0] for kind, _ in kinds_and_bytes):
            return None
        weights = [QuantizedWeight.from_blocks(kind, raw) for kind, raw in kinds_and_bytes]
        if rotary:  # the query and key rows, reordered as in unpermute_rotary_rows
            weights[0] = weights[0].rows(_rotary_row_order(weights[0].shape[0], model.config.n_head))
            weights[1] = weights[1].rows(_rotary_row_order(weights[1].shape[0], model.config.n_kv_head))
        return QuantizedWeight.stack(weights)

    def attach(parent: Module, attribute: str, *names: str, rotary: bool = False) -> None:
        quantized = blocks(*names, rotary=rotary)
        if quantized is not None:
            setattr(parent, attribute, QuantizedLinear(getattr(parent, attribute).weight, quantized))

    for i, layer in enumerate(model.layers):
        prefix = f"blk.{i}."
        names = [prefix + n for n in ("attn_q.weight", "attn_k.weight", "attn_v.weight")]
        attach(layer.attn, "qkv_proj", *names, rotary=True)
        attach(layer.attn, "o_proj", prefix + "attn_output.weight")
        attach(layer.mlp, "gate_up_proj", prefix + "ffn_gate.weight", prefix + "ffn_up.weight")
        attach(layer.mlp, "down_proj", prefix + "ffn_down.weight")
    if model.lm_head is None:
        model.head_blocks = blocks("token_embd.weight")
    else:
        attach(model, "lm_head", "output.weight")


def _rotary_row_order(rows: int, n_heads: int):
    """Return the row index that `unpermute_rotary_rows` applies to a (rows, C) weight."""
    return unpermute_rotary_rows(np.arange(rows)[:, None], n_heads)[:, 0]


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
