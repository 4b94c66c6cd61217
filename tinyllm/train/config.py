"""`TrainConfig`: every setting of a training run, saved in its checkpoints (defaults: nanoGPT's
shakespeare-char recipe)."""

from __future__ import annotations

from dataclasses import dataclass

from tinyllm.config import JSONConfig
from tinyllm.errors import ConfigError
from tinyllm.validate import check_choice


@dataclass
class TrainConfig(JSONConfig):
    """How to train: batches, optimizer, LR schedule, evaluation, logging, data and device."""

    batch_size: int = 12
    max_iters: int = 2000
    grad_accum_steps: int = 1  # micro-batches summed into one optimizer step
    optimizer: str = "adamw"  # "adamw" or "sgd"
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    lr_decay_iters: int | None = None  # None: max_iters
    weight_decay: float = 0.1  # on matrices only, never on biases, norms or embeddings
    beta1: float = 0.9
    beta2: float = 0.99
    momentum: float = 0.9  # SGD only
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    eval_interval: int = 250
    eval_iters: int = 20  # validation batches per evaluation (the same batches every time)
    log_interval: int = 10
    checkpoint_interval: int | None = None  # None: at every evaluation
    seed: int = 1337
    val_fraction: float = 0.1
    data: str | None = None  # corpus file; None: the bundled Shakespeare
    tokenizer: str = "char"  # "char" or "bpe" (used when a run starts; a resumed run keeps its own)
    bpe_vocab_size: int = 512
    device: str = "cpu"
    zero: int = 0  # with several ranks: 1 shards AdamW's moments across them (ZeRO-1), 0 keeps a full copy on each

    def __post_init__(self) -> None:
        positive = ("batch_size", "grad_accum_steps", "eval_interval", "eval_iters", "log_interval", "bpe_vocab_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_iters", "warmup_iters"):
            if getattr(self, name) < 0:
                raise ConfigError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.optimizer not in ("adamw", "sgd"):
            raise ConfigError(f"TrainConfig.optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if self.tokenizer not in ("char", "bpe"):
            raise ConfigError(f"TrainConfig.tokenizer must be 'char' or 'bpe', got {self.tokenizer!r}")
        check_choice("TrainConfig.zero", self.zero, (0, 1))
        if not self.lr > 0 or self.min_lr < 0:
            raise ConfigError(f"TrainConfig: lr must be > 0 and min_lr >= 0, got {self.lr} and {self.min_lr}")

    @property
    def decay_iters(self) -> int:
        return self.max_iters if self.lr_decay_iters is None else self.lr_decay_iters

    @property
    def save_interval(self) -> int:
        return self.eval_interval if self.checkpoint_interval is None else self.checkpoint_interval
