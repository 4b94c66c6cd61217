"""BERT: a bidirectional Transformer encoder (Devlin et al. 2018), Hugging Face's BertModel layout.

    input_ids (B, T), token_type_ids (B, T), attention_mask (B, T)
      -> word + position + segment embeddings -> LayerNorm -> dropout
      -> num_hidden_layers post-LN blocks:  x = LN(x + attn(x));  x = LN(x + ffn(x))
      -> last_hidden_state (B, T, C)

Unlike GPT, every position attends to every other; the attention mask only hides padding
(a bool (B, 1, 1, T) mask for F.scaled_dot_product_attention). The GELU is the exact erf form.
No pooler: sentence embeddings are the mean of the unpadded hidden states (`mean_pool`), as
sentence-transformers computes them, and the task heads (bert_heads.py) pool themselves.

Parameter names mirror transformers' (`embeddings.word_embeddings`, `encoder.layer.0.attention.
self.query` becomes `layers.0.attention.query`, ...), so bert_pretrained.py maps a checkpoint
onto this model with a short rename table.
"""

# ruff: noqa: N803, N806 - B, T, C, H, D: the field's names for tensor sizes (the house convention for model code)

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from tinyllm.autograd.grad_mode import no_grad
from tinyllm.autograd.tensor import Tensor
from tinyllm.backend import RANDOM
from tinyllm.config import MAX_CONTEXT, MAX_FFN, MAX_LAYERS, MAX_VOCAB_SIZE, MAX_WIDTH, config_checks
from tinyllm.errors import ConfigError, DTypeError, ShapeError
from tinyllm.nn import functional as F
from tinyllm.nn.attention import DotProductAttention
from tinyllm.nn.layers import Dropout, Embedding, LayerNorm, Linear
from tinyllm.nn.module import Module, ModuleList
from tinyllm.validate import check_float, check_int, check_token_ids

_ACTIVATIONS = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh"}  # hidden_act -> F.gelu form
_INTEGER_DTYPES = ("int64", "int32", "int16", "int8", "uint8")


@dataclass
class BertConfig:
    """The shape of a BERT encoder; field names are those of transformers' config.json."""

    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1  # kept for the file format; attention weights are not dropped
    hidden_act: str = "gelu"
    initializer_range: float = 0.02
    pad_token_id: int = 0

    def __post_init__(self) -> None:
        with config_checks():
            check_int("BertConfig.vocab_size", self.vocab_size, 1, MAX_VOCAB_SIZE)
            check_int("BertConfig.hidden_size", self.hidden_size, 1, MAX_WIDTH)
            check_int("BertConfig.num_hidden_layers", self.num_hidden_layers, 1, MAX_LAYERS)
            check_int("BertConfig.num_attention_heads", self.num_attention_heads, 1, MAX_WIDTH)
            check_int("BertConfig.intermediate_size", self.intermediate_size, 1, MAX_FFN)
            check_int("BertConfig.max_position_embeddings", self.max_position_embeddings, 1, MAX_CONTEXT)
            check_int("BertConfig.type_vocab_size", self.type_vocab_size, 1, MAX_VOCAB_SIZE)
            check_float("BertConfig.layer_norm_eps", self.layer_norm_eps, above=0.0)
            check_float("BertConfig.attention_probs_dropout_prob", self.attention_probs_dropout_prob, 0.0, below=1.0)
            check_float("BertConfig.initializer_range", self.initializer_range, minimum=0.0)
            check_int("BertConfig.pad_token_id", self.pad_token_id, 0, self.vocab_size - 1)
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"BertConfig: hidden_size {self.hidden_size} is not divisible by "
                f"num_attention_heads {self.num_attention_heads}"
            )
        if self.hidden_act not in _ACTIVATIONS:
            raise ConfigError(
                f"BertConfig.hidden_act {self.hidden_act!r} is not supported; expected one of {sorted(_ACTIVATIONS)}"
            )
        if not 0.0 <= self.hidden_dropout_prob < 1.0:
            raise ConfigError(f"BertConfig.hidden_dropout_prob must be in [0, 1), got {self.hidden_dropout_prob}")

    def to_dict(self) -> dict:
        """Return the config as a JSON-able dict in transformers' format (model_type "bert")."""
        return {
            "model_type": "bert",
            "architectures": ["BertModel"],
            "position_embedding_type": "absolute",
            **asdict(self),
        }

    @classmethod
    def from_dict(cls, data: dict) -> BertConfig:
        """Return the config of a transformers config.json dict; unsupported models raise ConfigError.

        Keys this model has no use for (architectures, use_cache, ...) are ignored.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"a BERT config must be a JSON object, got {type(data).__name__}")
        model_type = data.get("model_type", "bert")
        if model_type != "bert":
            raise ConfigError(f"config.json describes a {model_type!r} model; this loader supports model_type 'bert'")
        position_type = data.get("position_embedding_type", "absolute")
        if position_type != "absolute":
            raise ConfigError(f"position_embedding_type {position_type!r} is not supported; only 'absolute'")
        if data.get("is_decoder") or data.get("add_cross_attention"):
            raise ConfigError("decoder BERT configs (is_decoder / add_cross_attention) are not supported")
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{key: value for key, value in data.items() if key in known})
        except TypeError as error:
            raise ConfigError(f"BertConfig: {error}") from None


@dataclass
class BertOutput:
    """What BERT returns: the hidden state of every position of the last layer, (B, T, C)."""

    last_hidden_state: Tensor


class BertEmbeddings(Module):
    """Return LN(word[ids] + position[0..T-1] + segment[types]), then dropout: (B, T, C)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        C = config.hidden_size
        self.word_embeddings = Embedding(config.vocab_size, C)
        self.position_embeddings = Embedding(config.max_position_embeddings, C)
        self.token_type_embeddings = Embedding(config.type_vocab_size, C)
        self.norm = LayerNorm(C, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor) -> Tensor:
        T = input_ids.shape[1]
        words = self.word_embeddings(input_ids)  # (B, T, C)
        positions = self.position_embeddings.weight[:T]  # (T, C)
        segments = self.token_type_embeddings(token_type_ids)  # (B, T, C)
        return self.dropout(self.norm(words + positions + segments))  # (B, T, C)


class BertAttention(Module):
    """Multi-head self-attention over all positions, then LN(x + output(attention))."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        C = config.hidden_size
        self.n_head, self.head_dim = config.num_attention_heads, C // config.num_attention_heads
        self.query = Linear(C, C)
        self.key = Linear(C, C)
        self.value = Linear(C, C)
        self.output = Linear(C, C)
        self.attend = DotProductAttention()
        self.norm = LayerNorm(C, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """Return (B, T, C) for x (B, T, C) and a bool mask (B, 1, 1, T) of the keys that may be seen."""
        B, T, C = x.shape
        H, D = self.n_head, self.head_dim
        flat = x.reshape(B * T, C)  # (B*T, C)
        q = self.query(flat).reshape(B, T, H, D).permute(0, 2, 1, 3)  # (B, H, T, D)
        k = self.key(flat).reshape(B, T, H, D).permute(0, 2, 1, 3)  # (B, H, T, D)
        v = self.value(flat).reshape(B, T, H, D).permute(0, 2, 1, 3)  # (B, H, T, D)
        y = self.attend(q, k, v, mask)  # (B, H, T, D)
        y = y.permute(0, 2, 1, 3).reshape(B * T, C)  # (B*T, C)
        y = self.dropout(self.output(y))  # (B*T, C)
        return self.norm(flat + y).reshape(B, T, C)  # (B, T, C)


class BertLayer(Module):
    """One post-LN encoder block: x = LN(x + attn(x)); x = LN(x + output(gelu(intermediate(x))))."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        C = config.hidden_size
        self.approximate = _ACTIVATIONS[config.hidden_act]
        self.attention = BertAttention(config)
        self.intermediate = Linear(C, config.intermediate_size)
        self.output = Linear(config.intermediate_size, C)
        self.norm = LayerNorm(C, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        B, T, C = x.shape
        x = self.attention(x, mask).reshape(B * T, C)  # (B*T, C)
        hidden = F.gelu(self.intermediate(x), self.approximate)  # (B*T, 4C)
        y = self.dropout(self.output(hidden))  # (B*T, C)
        return self.norm(x + y).reshape(B, T, C)  # (B, T, C)


class BERT(Module):
    """A BERT encoder; `model(input_ids, attention_mask=...)` returns a BertOutput.

    `BERT.from_pretrained(directory)` loads a transformers-layout folder (config.json,
    model.safetensors, vocab.txt) and sets `model.tokenizer`, a WordPieceTokenizer.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.layers = ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))
        self.tokenizer = None
        self._init_weights()

    def _init_weights(self) -> None:
        """Initialize as transformers does: matrices N(0, initializer_range), biases 0, LayerNorms (1, 0)."""
        for name, param in self.named_parameters():
            xp = param._backend.xp
            if name.endswith("norm.weight"):
                param.array = xp.ones_like(param.array)
            elif name.endswith(".bias"):
                param.array = xp.zeros_like(param.array)
            else:
                noise = RANDOM.normal(param.shape, "float32") * self.config.initializer_range
                param.array = param._backend.from_host(noise)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> BertOutput:
        """Return BertOutput(last_hidden_state (B, T, C)) for ids (B, T) (lists, arrays or tensors).

        attention_mask (B, T): 1 for tokens, 0 for padding (default: all 1); token_type_ids
        (B, T): the sentence (0 or 1) of each token (default: all 0).
        """
        input_ids = self._as_ids(input_ids, "input_ids")
        B, T = input_ids.shape
        if T > self.config.max_position_embeddings:
            raise ShapeError(
                f"sequence of {T} tokens is longer than the model's max_position_embeddings "
                f"{self.config.max_position_embeddings}; truncate it (tokenizer(..., truncation=True))"
            )
        xp = input_ids._backend.xp
        check_token_ids(input_ids.array, self.config.vocab_size, "BERT input_ids")
        if token_type_ids is None:
            token_type_ids = Tensor._wrap(xp.zeros_like(input_ids.array), input_ids._backend, False, None)
        token_type_ids = self._as_ids(token_type_ids, "token_type_ids", (B, T))
        check_token_ids(token_type_ids.array, self.config.type_vocab_size, "BERT token_type_ids")
        mask = None
        if attention_mask is not None:
            attention_mask = self._as_ids(attention_mask, "attention_mask", (B, T))
            # transformers' meaning: 1 keeps a token, 0 drops it; any other value is a mistake
            if attention_mask.dtype != "bool":
                check_token_ids(attention_mask.array, 2, "BERT attention_mask (1 keep, 0 padding)")
            allowed = (attention_mask.array != 0).reshape(B, 1, 1, T)  # (B, 1, 1, T)
            mask = Tensor._wrap(allowed, input_ids._backend, False, None)
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, C)
        for layer in self.layers:
            x = layer(x, mask)  # (B, T, C)
        return BertOutput(last_hidden_state=x)

    def _as_ids(self, value, name: str, shape: tuple | None = None) -> Tensor:
        """Return value as an integer tensor (B, T) on the model's device, or raise a typed error."""
        device = self.embeddings.word_embeddings.weight.device
        if not isinstance(value, Tensor):
            value = Tensor(value, device=device)
        if value.dtype not in _INTEGER_DTYPES and value.dtype != "bool":
            raise DTypeError(f"BERT {name} must hold integers, got dtype {value.dtype}")
        if value.ndim != 2 or (shape is not None and value.shape != shape):
            expected = "(batch, sequence)" if shape is None else str(shape)
            raise ShapeError(f"BERT {name} must have shape {expected}, got {value.shape}")
        if 0 in value.shape:
            raise ShapeError(f"BERT {name} is empty (shape {value.shape})")
        return value

    # -- sentence embeddings --------------------------------------------------------------------
    def embed(
        self, texts: list[str], batch_size: int = 32, normalize: bool = True, max_length: int | None = None
    ) -> Tensor:
        """Return sentence embeddings (N, C): mean of each text's token states, L2-normalized.

        The sentence-transformers recipe of all-MiniLM-L6-v2; needs `self.tokenizer`.
        """
        if self.tokenizer is None:
            raise ConfigError("this BERT has no tokenizer; load it with BERT.from_pretrained or set model.tokenizer")
        if isinstance(texts, str):
            texts = [texts]
        parts = []
        with no_grad():
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(
                    texts[start : start + batch_size], padding=True, truncation=True, max_length=max_length,
                    return_tensors="tl",
                )  # fmt: skip
                hidden = self(batch.input_ids, batch.attention_mask, batch.token_type_ids).last_hidden_state
                pooled = mean_pool(hidden, batch.attention_mask)  # (b, C)
                parts.append(l2_normalize(pooled) if normalize else pooled)
        return F.cat(parts, axis=0)  # (N, C)

    # -- pretrained weights ---------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, directory) -> BERT:
        """Return the BERT of a transformers directory (config.json, model.safetensors, vocab.txt)."""
        from tinyllm.models.bert_pretrained import load_bert

        return load_bert(directory)

    def save_pretrained(self, directory) -> None:
        """Write config.json, model.safetensors (transformers' names) and vocab.txt into directory."""
        from tinyllm.models.bert_pretrained import save_bert

        save_bert(self, directory)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"layers={c.num_hidden_layers}, hidden={c.hidden_size}, heads={c.num_attention_heads}, vocab={c.vocab_size}"
        )


def mean_pool(hidden: Tensor, attention_mask) -> Tensor:
    """Return the mean over unpadded positions: (B, C) for hidden (B, T, C) and a 0/1 mask (B, T)."""
    if not isinstance(attention_mask, Tensor):
        attention_mask = Tensor(attention_mask, device=hidden.device)
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    total = (hidden * weights).sum(axis=1)  # (B, C)
    count = F.clip(weights.sum(axis=1), 1e-9, None)  # (B, 1)
    return total / count  # (B, C)


def l2_normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Return each row of x (N, C) divided by its L2 norm (at least eps)."""
    norm = F.clip((x * x).sum(axis=-1, keepdims=True).sqrt(), eps, None)  # (N, 1)
    return x / norm  # (N, C)
