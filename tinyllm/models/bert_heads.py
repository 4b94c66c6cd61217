"""Task heads on a BERT encoder: masked-language modelling and sequence classification.

    BertForMaskedLM:  hidden (N, C) -> dense -> GELU -> LayerNorm -> @ word_embeddings^T + bias
                      -> logits (N, vocab); the decoder is tied to the input embeddings
    BertForSequenceClassification: hidden (B, T, C) -> pooled (B, C) -> dropout -> linear
                      -> logits (B, num_labels); pooled is the mean over tokens ("mean"), the
                      [CLS] vector ("cls"), or BERT's pooler tanh(dense([CLS])) ("pooler": the
                      network of transformers' BertForSequenceClassification, saved as one)

Mean and [CLS] pooling have no pooler, so transformers' BertForSequenceClassification would
complete them with a random one. Saved, they name their own model type (`SAVED_MODEL_TYPE`),
which transformers does not know: its Auto classes refuse the folder unless told to run the
PyTorch code saved next to it (`TRANSFORMERS_CODE`, with trust_remote_code=True), which is the
same network. A README.md in the folder says so.

The MLM head's parameters are named as transformers' `cls.predictions.*` once saved
(bert_pretrained.py), so `BertForMaskedLM.from_pretrained` works on both our and their files.
"""

# ruff: noqa: N803, N806 - B, T, C: the field's names for tensor sizes (the house convention for model code)

from __future__ import annotations

from dataclasses import dataclass

from tinyllm.autograd.tensor import Tensor
from tinyllm.backend import RANDOM
from tinyllm.errors import ConfigError
from tinyllm.models.bert import _ACTIVATIONS, BERT, BertConfig, mean_pool
from tinyllm.nn import functional as F
from tinyllm.nn.layers import Dropout, LayerNorm, Linear
from tinyllm.nn.module import Module, Parameter
from tinyllm.ops import zeros

IGNORE_INDEX = -100
POOLINGS = ("mean", "cls", "pooler")

SAVED_MODEL_TYPE = "tinyllm_bert"  # config.json's model_type of a classifier without a pooler
SAVED_ARCHITECTURE = "TinyLLMBertForSequenceClassification"
TRANSFORMERS_CODE_FILE = "modeling_tinyllm_bert.py"
TRANSFORMERS_AUTO_MAP = {
    "AutoConfig": "modeling_tinyllm_bert.TinyLLMBertConfig",
    "AutoModelForSequenceClassification": "modeling_tinyllm_bert.TinyLLMBertForSequenceClassification",
}
# the PyTorch network of a classifier without a pooler, written next to its weights for transformers
TRANSFORMERS_CODE = '''"""tinyllm's BERT sentence classifier for transformers: BERT's encoder without its pooler,
the mean of the unpadded tokens' hidden states (classifier_pooling "mean") or the [CLS] one
("cls"), dropout, and a linear classifier. Load with
AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)."""

import torch
from transformers import BertConfig, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


class TinyLLMBertConfig(BertConfig):
    model_type = "tinyllm_bert"

    def __init__(self, classifier_pooling="mean", **kwargs):
        super().__init__(**kwargs)
        self.classifier_pooling = classifier_pooling


class TinyLLMBertForSequenceClassification(BertPreTrainedModel):
    config_class = TinyLLMBertConfig

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = torch.nn.Dropout(config.hidden_dropout_prob)
        self.classifier = torch.nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        hidden = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)[0]
        if self.config.classifier_pooling == "cls":
            pooled = hidden[:, 0]
        else:
            if attention_mask is None:
                attention_mask = torch.ones(hidden.shape[:2], device=hidden.device)
            weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        logits = self.classifier(self.dropout(pooled))
        loss = None if labels is None else torch.nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)
'''
TRANSFORMERS_README = """# A tinyllm BERT sentence classifier ({pooling} pooling)

This is not transformers' `BertForSequenceClassification`: that model classifies BERT's pooler
output, tanh(dense([CLS])), and this one has no pooler; it classifies {what}. Loaded as
`BertForSequenceClassification` it would get a random pooler and other logits, so config.json
names the model type `tinyllm_bert`, which transformers' Auto classes refuse, and
`modeling_tinyllm_bert.py` holds the same network in PyTorch:

    from transformers import AutoModelForSequenceClassification
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)

tinyllm loads it with `BertForSequenceClassification.from_pretrained(folder)`.
"""
POOLING_DESCRIPTIONS = {"mean": "the mean of the unpadded tokens' hidden states", "cls": "the [CLS] hidden state"}


@dataclass
class HeadOutput:
    """logits, and the mean cross-entropy loss when labels were given (else None)."""

    logits: Tensor
    loss: Tensor | None = None


def _init_linear(layer: Linear, std: float) -> None:
    """Initialize as transformers does: weight N(0, std), bias 0."""
    layer.weight.array = layer.weight._backend.from_host(RANDOM.normal(layer.weight.shape, "float32") * std)
    layer.bias.array = layer.bias._backend.xp.zeros_like(layer.bias.array)


class MLMHead(Module):
    """Return vocabulary logits (N, V) of hidden states (N, C): transform, then the tied decoder."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.approximate = _ACTIVATIONS[config.hidden_act]
        self.dense = Linear(config.hidden_size, config.hidden_size)
        self.norm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.bias = Parameter(zeros(config.vocab_size))
        _init_linear(self.dense, config.initializer_range)

    def forward(self, hidden: Tensor, word_embeddings: Tensor) -> Tensor:
        x = self.norm(F.gelu(self.dense(hidden), self.approximate))  # (N, C)
        return F.linear(x, word_embeddings, self.bias)  # (N, V)


class BertForMaskedLM(Module):
    """BERT with the masked-LM head; `model(ids, mask, labels=labels)` gives the masked-token loss."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.bert = BERT(config)
        self.head = MLMHead(config)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None) -> HeadOutput:
        """Return logits and loss. With labels (B, T) (IGNORE_INDEX where not predicted) the logits
        are computed only at the labelled positions, (N_labelled, V); without, at all, (B, T, V)."""
        hidden = self.bert(input_ids, attention_mask, token_type_ids).last_hidden_state  # (B, T, C)
        B, T, C = hidden.shape
        table = self.bert.embeddings.word_embeddings.weight  # (V, C)
        if labels is None:
            return HeadOutput(self.head(hidden.reshape(B * T, C), table).reshape(B, T, -1))  # (B, T, V)
        labels = labels if isinstance(labels, Tensor) else Tensor(labels, device=hidden.device)
        flat_labels = labels.reshape(B * T)  # (B*T,)
        xp = flat_labels._backend.xp
        positions = xp.nonzero(flat_labels.array != IGNORE_INDEX)[0]  # (N,)
        picked = Tensor._wrap(positions, flat_labels._backend, False, None)
        logits = self.head(hidden.reshape(B * T, C)[picked], table)  # (N, V)
        targets = flat_labels[picked]  # (N,)
        return HeadOutput(logits, F.cross_entropy(logits, targets))

    @classmethod
    def from_pretrained(cls, directory) -> BertForMaskedLM:
        """Return the model of a transformers directory; a missing MLM head is freshly initialized."""
        from tinyllm.models.bert_pretrained import load_masked_lm

        return load_masked_lm(directory)

    def save_pretrained(self, directory) -> None:
        from tinyllm.models.bert_pretrained import save_masked_lm

        save_masked_lm(self, directory)

    @property
    def tokenizer(self):
        return self.bert.tokenizer


class BertForSequenceClassification(Module):
    """BERT + pooling + dropout + linear; `model(ids, mask, labels=labels)` gives logits (B, K) and loss."""

    def __init__(self, config: BertConfig, num_labels: int = 2, pooling: str = "mean", dropout: float | None = None):
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {', '.join(map(repr, POOLINGS))}, got {pooling!r}")
        if not isinstance(num_labels, int) or num_labels < 2:
            raise ConfigError(f"num_labels must be an integer >= 2, got {num_labels!r}")
        self.config, self.num_labels, self.pooling = config, num_labels, pooling
        self.bert = BERT(config)
        self.dropout = Dropout(config.hidden_dropout_prob if dropout is None else dropout)
        self.classifier = Linear(config.hidden_size, num_labels)
        _init_linear(self.classifier, config.initializer_range)
        self.pooler = None
        if pooling == "pooler":
            self.pooler = Linear(config.hidden_size, config.hidden_size)
            _init_linear(self.pooler, config.initializer_range)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None) -> HeadOutput:
        hidden = self.bert(input_ids, attention_mask, token_type_ids).last_hidden_state  # (B, T, C)
        if self.pooling == "cls":
            pooled = hidden[:, 0]  # (B, C)
        elif self.pooling == "pooler":
            pooled = self.pooler(hidden[:, 0]).tanh()  # (B, C)
        else:
            mask = attention_mask if attention_mask is not None else [[1] * hidden.shape[1]] * hidden.shape[0]
            pooled = mean_pool(hidden, mask)  # (B, C)
        logits = self.classifier(self.dropout(pooled))  # (B, K)
        if labels is None:
            return HeadOutput(logits)
        labels = labels if isinstance(labels, Tensor) else Tensor(labels, device=hidden.device)
        return HeadOutput(logits, F.cross_entropy(logits, labels))

    @classmethod
    def from_pretrained(cls, directory, num_labels: int = 2, pooling: str = "mean") -> BertForSequenceClassification:
        """Return a classifier on the encoder of a transformers directory; the head is loaded if the
        directory holds one of the right shape (saved by `save_pretrained`), else initialized."""
        from tinyllm.models.bert_pretrained import load_classifier

        return load_classifier(directory, num_labels, pooling)

    def save_pretrained(self, directory) -> None:
        from tinyllm.models.bert_pretrained import save_classifier

        save_classifier(self, directory)

    @property
    def tokenizer(self):
        return self.bert.tokenizer
