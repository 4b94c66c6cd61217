"""File formats: safetensors (our own reader and writer) and training checkpoints."""

from tinyllm.io.checkpoint import Checkpoint, has_checkpoint, load_checkpoint, save_checkpoint
from tinyllm.io.safetensors import load_file, load_file_with_metadata, save_file

__all__ = [
    "Checkpoint",
    "has_checkpoint",
    "load_checkpoint",
    "load_file",
    "load_file_with_metadata",
    "save_checkpoint",
    "save_file",
]
