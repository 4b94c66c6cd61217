"""Batches: random contiguous windows of a token stream, and padded batches with attention masks."""

from __future__ import annotations

from tinyllm.backend import HostRandom, np
from tinyllm.errors import DataError


def random_windows(ids: np.ndarray, batch_size: int, block_size: int, random: HostRandom):
    """Return (x, y), each (batch_size, block_size) int64: windows at random starts, y = x shifted by one."""
    if len(ids) < block_size + 1:
        raise DataError(f"{len(ids)} tokens cannot fill one window of block_size {block_size} (needs {block_size + 1})")
    starts = random.integers(0, len(ids) - block_size, (batch_size,))  # (B,)
    positions = starts[:, None] + np.arange(block_size)[None, :]  # (B, T)
    return ids[positions], ids[positions + 1]


class BatchSampler:
    """An endless, seeded stream of random training batches whose position can be saved and restored.

    It owns its own generator, so evaluation or dropout never shift which batches training sees.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, block_size: int, seed: int = 0) -> None:
        if batch_size < 1 or block_size < 1:
            raise DataError(f"batch_size and block_size must be positive, got {batch_size} and {block_size}")
        if len(ids) < block_size + 1:
            raise DataError(
                f"{len(ids)} tokens cannot fill one window of block_size {block_size} (needs {block_size + 1})"
            )
        self.ids, self.batch_size, self.block_size = ids, batch_size, block_size
        self.random = HostRandom(seed)
        self.batches_drawn = 0

    def next(self):
        """Return the next (x, y) batch, each (batch_size, block_size) int64."""
        self.batches_drawn += 1
        return random_windows(self.ids, self.batch_size, self.block_size, self.random)

    def state_dict(self) -> dict:
        """Return the position in the stream as a JSON-able dict."""
        return {"rng": self.random.get_state(), "batches_drawn": self.batches_drawn}

    def load_state_dict(self, state: dict) -> None:
        self.random.set_state(state["rng"])
        self.batches_drawn = int(state["batches_drawn"])


def fixed_batches(ids: np.ndarray, n_batches: int, batch_size: int, block_size: int, seed: int = 0) -> list:
    """Return n_batches (x, y) pairs drawn with a fresh generator: the same ones at every call."""
    random = HostRandom(seed)
    return [random_windows(ids, batch_size, block_size, random) for _ in range(n_batches)]


def pad_batch(sequences, pad_id: int = 0, max_length: int | None = None):
    """Return (ids, attention_mask), each (B, T): sequences right-padded with pad_id to a common length.

    T is the longest sequence (or max_length); attention_mask is True on real tokens, False on padding.
    """
    sequences = [list(s) for s in sequences]
    if not sequences:
        raise DataError("pad_batch needs at least one sequence, got none")
    longest = max(len(s) for s in sequences)
    length = longest if max_length is None else max_length
    if longest > length:
        raise DataError(f"a sequence has {longest} tokens, more than max_length {length}")
    if length == 0:
        raise DataError("every sequence is empty")
    ids = np.full((len(sequences), length), pad_id, dtype=np.int64)  # (B, T)
    mask = np.zeros((len(sequences), length), dtype=bool)  # (B, T)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = sequence
        mask[row, : len(sequence)] = True
    return ids, mask


def sequential_windows(ids: np.ndarray, batch_size: int, block_size: int) -> list:
    """Return (x, y) batches of non-overlapping windows covering ids from the start (a full pass).

    Each batch has up to batch_size rows of block_size tokens; the tail shorter than a window is left out.
    """
    n_windows = (len(ids) - 1) // block_size
    if n_windows < 1:
        raise DataError(f"{len(ids)} tokens cannot fill one window of block_size {block_size} (needs {block_size + 1})")
    starts = np.arange(n_windows) * block_size  # (N,)
    positions = starts[:, None] + np.arange(block_size)[None, :]  # (N, T)
    x, y = ids[positions], ids[positions + 1]  # (N, T) each
    return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, n_windows, batch_size)]
