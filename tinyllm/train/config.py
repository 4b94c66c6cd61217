"""`TrainConfig`: every setting of a training run, saved in its checkpoints (defaults: nanoGPT's
shakespeare-char recipe)."""

from __future__ import annotations

from dataclasses import dataclass

from tinyllm.config import JSONConfig, config_checks
from tinyllm.validate import check_choice, check_float, check_int, check_str


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
        """Check every field's type and range (ConfigError naming the field and the value)."""
        with config_checks():
            for name in ("batch_size", "grad_accum_steps", "eval_interval", "eval_iters", "log_interval"):
                check_int(f"TrainConfig.{name}", getattr(self, name), minimum=1)
            for name in ("max_iters", "warmup_iters"):
                check_int(f"TrainConfig.{name}", getattr(self, name), minimum=0)
            for name in ("lr_decay_iters", "checkpoint_interval"):
                if getattr(self, name) is not None:
                    check_int(f"TrainConfig.{name}", getattr(self, name), minimum=1)
            check_int("TrainConfig.seed", self.seed)
            check_int("TrainConfig.bpe_vocab_size", self.bpe_vocab_size, minimum=257)
            check_choice("TrainConfig.optimizer", self.optimizer, ("adamw", "sgd"))
            check_choice("TrainConfig.tokenizer", self.tokenizer, ("char", "bpe"))
            check_float("TrainConfig.lr", self.lr, above=0.0)
            check_float("TrainConfig.min_lr", self.min_lr, minimum=0.0)
            check_float("TrainConfig.weight_decay", self.weight_decay, minimum=0.0)
            check_float("TrainConfig.beta1", self.beta1, minimum=0.0, below=1.0)
            check_float("TrainConfig.beta2", self.beta2, minimum=0.0, below=1.0)
            check_float("TrainConfig.momentum", self.momentum, minimum=0.0, below=1.0)
            check_float("TrainConfig.grad_clip", self.grad_clip, minimum=0.0)  # 0: off; negative is a mistake
            check_float("TrainConfig.val_fraction", self.val_fraction, above=0.0, below=1.0)
            if self.data is not None:
                check_str("TrainConfig.data", self.data, allow_empty=False)
            check_str("TrainConfig.device", self.device, allow_empty=False)
            check_choice("TrainConfig.zero", self.zero, (0, 1))

    @property
    def decay_iters(self) -> int:
        return self.max_iters if self.lr_decay_iters is None else self.lr_decay_iters

    @property
    def save_interval(self) -> int:
        return self.eval_interval if self.checkpoint_interval is None else self.checkpoint_interval
