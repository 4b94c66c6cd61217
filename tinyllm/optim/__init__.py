"""Optimizers with PyTorch's signatures and param groups (SGD, Adam, AdamW), `optim.lr_scheduler`,
weight-decay groups, tinyllm's warmup-cosine schedule and gradient clipping."""

from tinyllm.optim import lr_scheduler
from tinyllm.optim.adam import Adam
from tinyllm.optim.adamw import AdamW
from tinyllm.optim.clip import clip_grad_norm
from tinyllm.optim.groups import weight_decay_groups
from tinyllm.optim.optimizer import Optimizer
from tinyllm.optim.schedule import WarmupCosine, set_lr
from tinyllm.optim.sgd import SGD

__all__ = [
    "SGD", "Adam", "AdamW", "Optimizer", "WarmupCosine", "clip_grad_norm", "lr_scheduler", "set_lr",
    "weight_decay_groups",
]  # fmt: skip
