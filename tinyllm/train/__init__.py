"""Training: the loop (`Trainer`), its config, evaluation, the JSONL log and loss plot, and model restore."""

from tinyllm.train.config import TrainConfig
from tinyllm.train.evaluate import evaluate_loss, language_model_loss, perplexity
from tinyllm.train.log import JsonlLog, plot_log, plot_loss_curves
from tinyllm.train.restore import build_model, load_trained, model_record
from tinyllm.train.trainer import FitResult, Trainer, make_optimizer

__all__ = [
    "FitResult", "JsonlLog", "TrainConfig", "Trainer", "build_model", "evaluate_loss", "language_model_loss",
    "load_trained", "make_optimizer", "model_record", "perplexity", "plot_log", "plot_loss_curves",
]  # fmt: skip
