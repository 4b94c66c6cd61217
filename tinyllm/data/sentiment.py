"""The movie-review sentiment data of VADER (Hutto & Gilbert, ICWSM 2014), split 80/20.

movieReviewSnippets_GroundTruth.txt has one sentence per line: id, the mean of human ratings
from -4 (very negative) to +4 (very positive), and the text, separated by tabs. The label is
the sign of the mean (1 positive, 0 negative); the 37 sentences rated exactly 0 are dropped,
leaving 10,568. A permutation seeded with 0 puts 80% in train and the rest in test.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tinyllm.backend import np
from tinyllm.errors import DataError

FILE_NAME = "movieReviewSnippets_GroundTruth.txt"
LABEL_NAMES = ("negative", "positive")


@dataclass
class SentimentSplit:
    """Sentences and their 0/1 labels (0 negative, 1 positive)."""

    texts: list[str]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int) -> SentimentSplit:
        """Return the first n examples."""
        return SentimentSplit(self.texts[:n], self.labels[:n])


def read_snippets(path: str | os.PathLike) -> tuple[list[str], list[float]]:
    """Return (texts, mean scores) of every line of a movieReviewSnippets file."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read sentiment file {path}: {error}") from error
    texts, scores = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise DataError(
                f"{path}, line {number}: expected 3 tab-separated fields (id, score, text), got {len(parts)}"
            )
        try:
            scores.append(float(parts[1]))
        except ValueError:
            raise DataError(f"{path}, line {number}: the score {parts[1]!r} is not a number") from None
        texts.append(parts[2].strip())
    if not texts:
        raise DataError(f"sentiment file {path} holds no sentences")
    return texts, scores


def load_sentiment(
    path: str | os.PathLike | None = None, test_fraction: float = 0.2, seed: int = 0
) -> tuple[SentimentSplit, SentimentSplit]:
    """Return (train, test) of the VADER movie-review sentences (default: the hub's "vader" files)."""
    if path is None:
        from tinyllm.hub import download

        path = download("vader") / FILE_NAME
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
    texts, scores = read_snippets(path)
    kept = [(text, int(score > 0)) for text, score in zip(texts, scores) if score != 0]
    order = np.random.default_rng(seed).permutation(len(kept))
    n_train = len(kept) - int(round(len(kept) * test_fraction))
    train = [kept[i] for i in order[:n_train]]
    test = [kept[i] for i in order[n_train:]]
    return (
        SentimentSplit([t for t, _ in train], [y for _, y in train]),
        SentimentSplit([t for t, _ in test], [y for _, y in test]),
    )
