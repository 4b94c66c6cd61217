"""Rebuild a trained model and its tokenizer from a checkpoint folder."""

from __future__ import annotations

import os

from tinyllm.errors import CheckpointError, ConfigError
from tinyllm.io import Checkpoint, load_checkpoint
from tinyllm.models import GPT, GPTConfig
from tinyllm.tokenizers import Tokenizer

MODEL_TYPES = {"gpt": (GPT, GPTConfig)}


def model_record(model) -> dict:
    """Return {"model_type", "config"}: what a checkpoint's config.json needs to rebuild the model."""
    for name, (model_class, _) in MODEL_TYPES.items():
        if type(model) is model_class:
            return {"model_type": name, "config": model.config.to_dict()}
    raise ConfigError(f"cannot checkpoint a {type(model).__name__}; known model types: {sorted(MODEL_TYPES)}")


def build_model(record: dict):
    """Return a freshly initialized model of the type and config a `model_record` describes."""
    kind = record.get("model_type")
    if kind not in MODEL_TYPES:
        raise CheckpointError(f"checkpoint model type {kind!r} is unknown; known: {sorted(MODEL_TYPES)}")
    model_class, config_class = MODEL_TYPES[kind]
    return model_class(config_class.from_dict(record["config"]))


def load_trained(directory: str | os.PathLike, device: str | None = None):
    """Return (model in eval mode, tokenizer, checkpoint) of a checkpoint folder."""
    checkpoint: Checkpoint = load_checkpoint(directory)
    model = build_model(checkpoint.config)
    try:
        model.load_state_dict(checkpoint.weights)
    except (KeyError, ValueError) as error:
        raise CheckpointError(f"checkpoint {directory}: the weights do not fit the model: {error}") from error
    if device:
        model.to(device)
    if checkpoint.tokenizer is None:
        raise CheckpointError(f"checkpoint {directory} has no tokenizer")
    return model.eval(), Tokenizer.from_dict(checkpoint.tokenizer), checkpoint
