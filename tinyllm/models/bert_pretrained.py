"""Load and save BERT in transformers' directory layout: config.json, model.safetensors, vocab.txt.

A checkpoint's names map onto tinyllm's by a rename table (`_RENAMES`); the pooler, the
position_ids buffer and task heads that the model does not have are skipped, and a `bert.`
prefix (BertForMaskedLM / BertForSequenceClassification checkpoints) is removed. Every problem
with the directory (missing, a file absent or unreadable, an unsupported config, missing or
misshapen weights) raises ConfigError naming the file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tinyllm.errors import CheckpointError, ConfigError, TokenizerError
from tinyllm.io.safetensors import load_file, save_file
from tinyllm.models.bert import BERT, BertConfig
from tinyllm.tokenizers.wordpiece import WordPieceTokenizer

# (transformers name pattern, tinyllm name), applied in order, first match wins
_RENAMES = [
    (r"embeddings\.LayerNorm\.(weight|bias)", r"embeddings.norm.\1"),
    (r"embeddings\.(word|position|token_type)_embeddings\.weight", r"embeddings.\1_embeddings.weight"),
    (r"encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.(weight|bias)", r"layers.\1.attention.\2.\3"),
    (r"encoder\.layer\.(\d+)\.attention\.output\.dense\.(weight|bias)", r"layers.\1.attention.output.\2"),
    (r"encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.(weight|bias)", r"layers.\1.attention.norm.\2"),
    (r"encoder\.layer\.(\d+)\.intermediate\.dense\.(weight|bias)", r"layers.\1.intermediate.\2"),
    (r"encoder\.layer\.(\d+)\.output\.dense\.(weight|bias)", r"layers.\1.output.\2"),
    (r"encoder\.layer\.(\d+)\.output\.LayerNorm\.(weight|bias)", r"layers.\1.norm.\2"),
]
_SKIPPED = re.compile(r"(embeddings\.position_ids|pooler\..*|cls\..*|classifier\..*)")
_INVERSE = [
    (r"embeddings\.norm\.(weight|bias)", r"embeddings.LayerNorm.\1"),
    (r"layers\.(\d+)\.attention\.(query|key|value)\.(weight|bias)", r"encoder.layer.\1.attention.self.\2.\3"),
    (r"layers\.(\d+)\.attention\.output\.(weight|bias)", r"encoder.layer.\1.attention.output.dense.\2"),
    (r"layers\.(\d+)\.attention\.norm\.(weight|bias)", r"encoder.layer.\1.attention.output.LayerNorm.\2"),
    (r"layers\.(\d+)\.intermediate\.(weight|bias)", r"encoder.layer.\1.intermediate.dense.\2"),
    (r"layers\.(\d+)\.output\.(weight|bias)", r"encoder.layer.\1.output.dense.\2"),
    (r"layers\.(\d+)\.norm\.(weight|bias)", r"encoder.layer.\1.output.LayerNorm.\2"),
]


def _rename(name: str, table) -> str | None:
    for pattern, replacement in table:
        if re.fullmatch(pattern, name):
            return re.sub(pattern, replacement, name)
    return None


def to_tinyllm_names(tensors: dict) -> dict:
    """Return {tinyllm name: array} for a transformers BERT state dict; unknown names raise ConfigError."""
    renamed = {}
    for name, array in tensors.items():
        bare = name.removeprefix("bert.").replace(".gamma", ".weight").replace(".beta", ".bias")
        if _SKIPPED.fullmatch(bare):
            continue
        target = _rename(bare, _RENAMES)
        if target is None:
            raise ConfigError(f"model.safetensors holds a tensor {name!r} that a BERT encoder does not have")
        renamed[target] = array
    return renamed


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path.name} not found in {path.parent}") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ConfigError(f"{path} is not readable JSON: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def load_tokenizer(directory: str | Path) -> WordPieceTokenizer:
    """Return the WordPiece tokenizer of a directory's vocab.txt (options from tokenizer_config.json)."""
    directory = Path(directory)
    vocab = directory / "vocab.txt"
    if not vocab.is_file():
        raise ConfigError(f"vocab.txt not found in {directory}")
    options = {}
    if (directory / "tokenizer_config.json").is_file():
        settings = _read_json(directory / "tokenizer_config.json")
        options = {
            "lowercase": bool(settings.get("do_lower_case", True)),
            "strip_accents": settings.get("strip_accents"),
            "split_cjk": bool(settings.get("tokenize_chinese_chars", True)),
            "model_max_length": int(min(settings.get("model_max_length", 512), 1 << 30)),
        }
    try:
        return WordPieceTokenizer.from_file(vocab, **options)
    except TokenizerError as error:
        raise ConfigError(f"{vocab}: {error}") from None


def read_checkpoint(directory: str | Path) -> tuple[BertConfig, dict, dict]:
    """Return (config, config.json as a dict, {name: array} of model.safetensors) of a directory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(
            f"model directory {directory} does not exist (expected config.json, model.safetensors, vocab.txt)"
        )
    raw_config = _read_json(directory / "config.json")
    from tinyllm.models.bert_heads import SAVED_MODEL_TYPE

    if raw_config.get("model_type") == SAVED_MODEL_TYPE:  # a classifier of ours: a BERT encoder
        config = BertConfig.from_dict({**raw_config, "model_type": "bert"})
    else:
        config = BertConfig.from_dict(raw_config)
    weights_path = directory / "model.safetensors"
    if not weights_path.is_file():
        raise ConfigError(f"model.safetensors not found in {directory}")
    try:
        tensors = load_file(weights_path)
    except CheckpointError as error:
        raise ConfigError(f"model.safetensors is malformed: {error}") from None
    return config, raw_config, tensors


def _load_encoder(model: BERT, tensors: dict, directory: Path) -> None:
    """Copy the encoder weights of a checkpoint into model and attach the directory's tokenizer."""
    state = to_tinyllm_names(tensors)
    expected = dict(model.named_parameters())
    missing = sorted(set(expected) - set(state))
    source = directory / "model.safetensors"
    if missing:
        raise ConfigError(f"{source} lacks {len(missing)} weights of the config's model, e.g. {missing[:3]}")
    for name, param in expected.items():
        if tuple(state[name].shape) != param.shape:
            raise ConfigError(
                f"{source}: weight {name} has shape {tuple(state[name].shape)}, config.json implies {param.shape}"
            )
    model.load_state_dict(state)
    model.tokenizer = load_tokenizer(directory)
    if model.tokenizer.vocab_size != model.config.vocab_size:
        raise ConfigError(
            f"vocab.txt has {model.tokenizer.vocab_size} tokens but config.json says vocab_size {model.config.vocab_size}"
        )


def load_bert(directory: str | Path) -> BERT:
    """Return a BERT (eval mode, with its tokenizer) loaded from a transformers-layout directory."""
    config, _, tensors = read_checkpoint(directory)
    model = BERT(config)
    _load_encoder(model, tensors, Path(directory))
    return model.eval()


def _load_head(module, tensors: dict, names: dict) -> bool:
    """Copy {checkpoint name: parameter name} into module if all are present with the right shapes."""
    params = dict(module.named_parameters())
    if not all(k in tensors and tuple(tensors[k].shape) == params[v].shape for k, v in names.items()):
        return False
    module.load_state_dict({v: tensors[k] for k, v in names.items()}, strict=False)
    return True


_MLM_HEAD = {
    "cls.predictions.transform.dense.weight": "dense.weight",
    "cls.predictions.transform.dense.bias": "dense.bias",
    "cls.predictions.transform.LayerNorm.weight": "norm.weight",
    "cls.predictions.transform.LayerNorm.bias": "norm.bias",
    "cls.predictions.bias": "bias",
}
_CLASSIFIER = {"classifier.weight": "weight", "classifier.bias": "bias"}
_POOLER = {"pooler.dense.weight": "weight", "pooler.dense.bias": "bias"}


def load_masked_lm(directory: str | Path):
    """Return a BertForMaskedLM (eval mode); its head is loaded when the checkpoint has one."""
    from tinyllm.models.bert_heads import BertForMaskedLM

    config, _, tensors = read_checkpoint(directory)
    model = BertForMaskedLM(config)
    _load_encoder(model.bert, tensors, Path(directory))
    _load_head(model.head, tensors, _MLM_HEAD)
    return model.eval()


def load_classifier(directory: str | Path, num_labels: int = 2, pooling: str = "mean"):
    """Return a BertForSequenceClassification (eval mode) on a checkpoint's encoder.

    A directory written by its `save_pretrained` also restores the head, its label count and pooling.
    """
    from tinyllm.models.bert_heads import BertForSequenceClassification

    config, raw_config, tensors = read_checkpoint(directory)
    num_labels = int(raw_config.get("num_labels", num_labels))
    pooling = raw_config.get("classifier_pooling", pooling)
    model = BertForSequenceClassification(config, num_labels=num_labels, pooling=pooling)
    _load_encoder(model.bert, tensors, Path(directory))
    _load_head(model.classifier, tensors, _CLASSIFIER)
    if model.pooler is not None:  # a pretrained encoder's pooler, under either name
        _load_head(model.pooler, tensors, _POOLER) or _load_head(model.pooler, tensors, _prefixed(_POOLER, "bert."))
    return model.eval()


def _prefixed(names: dict, prefix: str) -> dict:
    return {prefix + name: param for name, param in names.items()}


def save_bert(
    model: BERT,
    directory: str | Path,
    extra_tensors: dict | None = None,
    extra_config: dict | None = None,
    prefix: str = "",
) -> None:
    """Write model (and its tokenizer's vocab.txt) to directory in transformers' layout.

    extra_tensors: more {transformers name: array} to store (a task head's weights);
    extra_config: more config.json fields; prefix: put before the encoder's names ("bert.").
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {prefix + (_rename(name, _INVERSE) or name): array for name, array in model.state_dict().items()}
    state.update(extra_tensors or {})
    save_file(state, directory / "model.safetensors", metadata={"format": "pt"})
    config = {**model.config.to_dict(), **(extra_config or {})}
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    if model.tokenizer is not None:
        (directory / "vocab.txt").write_text("\n".join(model.tokenizer.vocab) + "\n", encoding="utf-8")
        tokenizer = model.tokenizer
        settings = {
            "do_lower_case": tokenizer.basic.lowercase,
            "strip_accents": tokenizer.basic.strip_accents,
            "tokenize_chinese_chars": tokenizer.basic.split_cjk,
            "model_max_length": tokenizer.model_max_length,
            "tokenizer_class": "BertTokenizer",
        }
        (directory / "tokenizer_config.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


def save_masked_lm(model, directory: str | Path) -> None:
    """Write a BertForMaskedLM as transformers does (encoder under "bert.", head under "cls.predictions.")."""
    head = model.head.state_dict()
    extra = {name: head[param_name] for name, param_name in _MLM_HEAD.items()}
    save_bert(model.bert, directory, extra, {"architectures": ["BertForMaskedLM"]}, prefix="bert.")


def save_classifier(model, directory: str | Path) -> None:
    """Write a BertForSequenceClassification: encoder, "classifier.*", num_labels and pooling in config.json.

    With pooling "pooler" this is exactly transformers' BertForSequenceClassification (the pooler
    saved as "bert.pooler.dense.*"), which loads it as the same network. Mean or [CLS] pooling has
    no transformers equivalent: the config then names a model type of its own, which transformers'
    Auto classes refuse rather than complete with a random pooler, and the folder holds the same
    network as transformers code (loaded with trust_remote_code=True) and a README.md saying so.
    """
    from tinyllm.models import bert_heads

    head = model.classifier.state_dict()
    extra = {name: head[param_name] for name, param_name in _CLASSIFIER.items()}
    config = {"num_labels": model.num_labels, "classifier_pooling": model.pooling}
    if model.pooler is not None:
        pooler = model.pooler.state_dict()
        extra.update({"bert." + name: pooler[param_name] for name, param_name in _POOLER.items()})
        config["architectures"] = ["BertForSequenceClassification"]
    else:
        config["model_type"] = bert_heads.SAVED_MODEL_TYPE
        config["architectures"] = [bert_heads.SAVED_ARCHITECTURE]
        config["auto_map"] = bert_heads.TRANSFORMERS_AUTO_MAP
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / bert_heads.TRANSFORMERS_CODE_FILE).write_text(bert_heads.TRANSFORMERS_CODE, encoding="utf-8")
        what = bert_heads.POOLING_DESCRIPTIONS[model.pooling]
        readme = bert_heads.TRANSFORMERS_README.format(pooling=model.pooling, what=what)
        (directory / "README.md").write_text(readme, encoding="utf-8")
    save_bert(model.bert, directory, extra, config, prefix="bert.")
