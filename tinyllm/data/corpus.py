"""Text corpora: the bundled Shakespeare (or any UTF-8 file) as token ids, split into train and val."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tinyllm.backend import np
from tinyllm.errors import DataError
from tinyllm.tokenizers import Tokenizer

DEFAULT_CORPUS = Path(__file__).resolve().parent / "shakespeare.txt"


def load_text(path: str | os.PathLike | None = None) -> str:
    """Return the text of a UTF-8 file (the bundled Shakespeare plays when path is None)."""
    path = Path(path) if path is not None else DEFAULT_CORPUS
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read corpus file {path}: {error.strerror or error}") from error
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"corpus file {path} is not UTF-8: byte {error.start} is {raw[error.start]:#04x}") from error
    if not text:
        raise DataError(f"corpus file {path} is empty (0 bytes)")
    return text


@dataclass
class Corpus:
    """Token ids of a text, cut once into a training part and a validation part (the end)."""

    train: np.ndarray  # (N_train,) int64
    val: np.ndarray  # (N_val,) int64

    @classmethod
    def from_text(
        cls, text: str, tokenizer: Tokenizer, val_fraction: float = 0.1, block_size: int | None = None
    ) -> Corpus:
        """Return the corpus of text; with block_size, check that each part holds one batch row."""
        if not 0.0 < val_fraction < 1.0:
            raise DataError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if not text:
            raise DataError("the corpus is empty (0 characters)")
        ids = np.asarray(tokenizer.encode(text), dtype=np.int64)  # (N,)
        n_val = int(round(len(ids) * val_fraction))
        corpus = cls(train=ids[: len(ids) - n_val], val=ids[len(ids) - n_val :])
        if block_size is not None:
            corpus.check(block_size)
        return corpus

    def check(self, block_size: int) -> None:
        """Raise DataError unless both parts have at least block_size + 1 tokens."""
        for name, part in (("train", self.train), ("val", self.val)):
            if len(part) < block_size + 1:
                total = len(self.train) + len(self.val)
                raise DataError(
                    f"the corpus is too short: its {name} part has {len(part)} tokens (of {total} in all), "
                    f"but one sequence of block_size {block_size} needs {block_size + 1}"
                )
