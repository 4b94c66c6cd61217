"""Optimizers (AdamW, SGD with momentum), weight-decay groups, LR schedule and gradient clipping."""

from tinyllm.optim.adamw import AdamW
from tinyllm.optim.clip import clip_grad_norm
from tinyllm.optim.groups import weight_decay_groups
from tinyllm.optim.optimizer import Optimizer
from tinyllm.optim.schedule import WarmupCosine, set_lr
from tinyllm.optim.sgd import SGD

__all__ = ["SGD", "AdamW", "Optimizer", "WarmupCosine", "clip_grad_norm", "set_lr", "weight_decay_groups"]
