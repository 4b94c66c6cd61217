"""Data: the bundled Shakespeare corpus (or any UTF-8 file), train/val split, and batches."""

from tinyllm.data.batches import BatchSampler, fixed_batches, pad_batch, random_windows, sequential_windows
from tinyllm.data.corpus import DEFAULT_CORPUS, Corpus, load_text

__all__ = [
    "DEFAULT_CORPUS",
    "BatchSampler",
    "Corpus",
    "fixed_batches",
    "load_text",
    "pad_batch",
    "random_windows",
    "sequential_windows",
]
