"""Absolute positional encodings: a learned table (GPT-2) and the fixed sinusoidal one.

Both are called as `pe(T, offset)` and return the (T, C) vectors of positions offset .. offset+T-1,
which the model adds to the token embeddings; `offset` is the number of positions already held in
a KV cache.

The sinusoidal encoding of "Attention Is All You Need":
    PE(pos, 2i)   = sin(pos / 10000^(2i/d))
    PE(pos, 2i+1) = cos(pos / 10000^(2i/d))
"""

# ruff: noqa: N803, N806 - B, T, C, H, D: the field's names for tensor sizes (the house convention for model code)

from __future__ import annotations

from tinyllm import ops
from tinyllm.autograd.tensor import Tensor
from tinyllm.backend import get_backend, np
from tinyllm.errors import ShapeError
from tinyllm.nn import functional as F
from tinyllm.nn.module import Module, Parameter


def _check_range(T: int, offset: int, max_len: int) -> None:
    if offset < 0 or T < 0 or offset + T > max_len:
        raise ShapeError(f"positions {offset}..{offset + T - 1} do not fit a positional table of {max_len} positions")


class LearnedPositionalEmbedding(Module):
    """A trained (max_len, dim) table of position vectors; `weight` is GPT-2's `wpe`."""

    def __init__(self, max_len: int, dim: int) -> None:
        super().__init__()
        self.max_len, self.dim = max_len, dim
        self.weight = Parameter(ops.randn(max_len, dim) * 0.02)

    def forward(self, T: int, offset: int = 0, device: str | None = None) -> Tensor:
        """Return the (T, dim) vectors of positions offset .. offset+T-1 (device: the weight's)."""
        _check_range(T, offset, self.max_len)
        return self.weight[offset : offset + T]  # (T, C)

    def lookup(self, positions) -> Tensor:
        """Return the (B, T, dim) vectors of the host int positions (B, T), one set per row."""
        _check_range(1, int(positions.max()), self.max_len)
        return F.embedding(Tensor(positions, device=self.weight.device), self.weight)  # (B, T, C)

    def extra_repr(self) -> str:
        return f"{self.max_len}, {self.dim}"


def sinusoidal_table(max_len: int, dim: int) -> np.ndarray:
    """Return the (max_len, dim) float32 sinusoidal table: sin on even columns, cos on odd ones."""
    positions = np.arange(max_len, dtype=np.float64)[:, None]  # (max_len, 1)
    two_i = np.arange(0, dim, 2, dtype=np.float64)  # (ceil(dim/2),)
    angles = positions / np.power(10000.0, two_i / dim)  # (max_len, ceil(dim/2))
    table = np.zeros((max_len, dim), dtype=np.float64)
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : dim // 2])
    return table.astype(np.float32)


class SinusoidalPositionalEncoding(Module):
    """The fixed sinusoidal encoding; it has no parameters, and its table is built once per device."""

    def __init__(self, max_len: int, dim: int) -> None:
        super().__init__()
        self.max_len, self.dim = max_len, dim
        self._host_table = sinusoidal_table(max_len, dim)
        self._tables: dict[str, Tensor] = {}

    def forward(self, T: int, offset: int = 0, device: str | None = None) -> Tensor:
        """Return the (T, dim) encodings of positions offset .. offset+T-1 on `device`."""
        _check_range(T, offset, self.max_len)
        backend = get_backend(device)
        table = self._tables.get(backend.name)
        if table is None:
            table = Tensor._wrap(backend.from_host(self._host_table), backend, False, None)  # (max_len, C)
            self._tables[backend.name] = table
        return table[offset : offset + T]  # (T, C)

    def lookup(self, positions, device: str | None = None) -> Tensor:
        """Return the (B, T, dim) encodings of the host int positions (B, T), one set per row."""
        _check_range(1, int(positions.max()), self.max_len)
        table = self.forward(self.max_len, 0, device)  # (max_len, C)
        return F.embedding(Tensor(positions, device=table.device), table)  # (B, T, C)

    def extra_repr(self) -> str:
        return f"{self.max_len}, {self.dim}"
