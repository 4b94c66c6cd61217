"""Causal multi-head self-attention, and the KV cache that makes generation linear in length.

Without a cache, generating token t+1 recomputes keys and values of all t positions before it.
The cache keeps, for every layer, the keys and values (B, H_kv, T, D) of the positions already
seen, so each new step only projects the new token and attends to the stored keys. Any decoder
(GPT here, Llama with its fewer key/value heads) can use `KVCache`: a model gives each of its
layers `cache[layer_index]`, and the layer calls `.append(k, v)`.

A batch of left-padded sequences sets `cache.set_padding(padding)`: row b's first padding[b]
positions are padding, which no real token attends to, and models count each row's positions
from its first real token, so every row computes what it would alone.
"""

# ruff: noqa: N803, N806 - B, T, C, H, D: the field's names for tensor sizes (the house convention for model code)

from __future__ import annotations

from tinyllm.autograd.tensor import Tensor
from tinyllm.backend import np
from tinyllm.errors import GraphError, ShapeError
from tinyllm.nn import functional as F
from tinyllm.nn.layers import Dropout, Linear
from tinyllm.nn.module import Module


class LayerKVCache:
    """Keys and values of one attention layer: arrays (B, H_kv, capacity, D), the first `length`
    positions filled.

    Storage is allocated at the first `append`, with the batch size, heads, head size, dtype and
    device of the keys given. With `max_len` set, it is allocated once at that size (no copies
    while generating); with `max_len=None` it grows by doubling.
    """

    def __init__(self, max_len: int | None = None) -> None:
        self.max_len = max_len
        self.length = 0
        self.keys = None  # raw array (B, H_kv, capacity, D)
        self.values = None  # raw array (B, H_kv, capacity, D)
        self._backend = None
        self.padding = None  # host int array (B,) of left-padding lengths, or None (see KVCache)

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store k, v (B, H_kv, T_new, D) after the held positions; return all keys and values
        (B, H_kv, length, D), with the new ones last."""
        if k.requires_grad or v.requires_grad:
            raise GraphError("the KV cache is for inference and keeps no graph; run generation under tl.no_grad()")
        if k.shape != v.shape or k.ndim != 4:
            raise ShapeError(
                f"KV cache needs keys and values of one shape (B, H_kv, T, D), got {k.shape} and {v.shape}"
            )
        B, H, T_new, D = k.shape
        needed = self.length + T_new
        if self.max_len is not None and needed > self.max_len:
            raise ShapeError(f"KV cache is full: {self.length} positions held + {T_new} new > max_len {self.max_len}")
        if self.keys is None or needed > self.keys.shape[2]:
            self._grow(k, needed)
        elif self.keys.shape[:2] != (B, H) or self.keys.shape[3] != D:
            raise ShapeError(
                f"KV cache holds keys of shape (B, H_kv, _, D) = {self.keys.shape[:2] + self.keys.shape[3:]}, "
                f"got new keys {k.shape}"
            )
        self.keys[:, :, self.length : needed, ...] = k.array  # (B, H, T_new, D); `...`: array API indexing
        self.values[:, :, self.length : needed, ...] = v.array  # (B, H, T_new, D)
        self.length = needed
        backend = self._backend
        keys = Tensor._wrap(self.keys[:, :, :needed, ...], backend, False, None)  # (B, H, length, D)
        values = Tensor._wrap(self.values[:, :, :needed, ...], backend, False, None)  # (B, H, length, D)
        return keys, values

    def _grow(self, k: Tensor, needed: int) -> None:
        B, H, _, D = k.shape
        xp = k._backend.xp
        if self.max_len is not None:
            capacity = self.max_len
        else:
            capacity = max(needed, 2 * (self.keys.shape[2] if self.keys is not None else 16))
        keys = xp.zeros((B, H, capacity, D), dtype=k.array.dtype)  # (B, H, capacity, D)
        values = xp.zeros((B, H, capacity, D), dtype=k.array.dtype)  # (B, H, capacity, D)
        if self.keys is not None:
            if self.keys.shape[:2] != (B, H) or self.keys.shape[3] != D:
                raise ShapeError(f"KV cache holds keys {self.keys.shape}, got new keys {k.shape}")
            keys[:, :, : self.length, ...] = self.keys[:, :, : self.length, ...]
            values[:, :, : self.length, ...] = self.values[:, :, : self.length, ...]
        self.keys, self.values, self._backend = keys, values, k._backend

    def reset(self) -> None:
        """Forget every held position (the storage is kept for reuse)."""
        self.length = 0


class KVCache:
    """The keys and values of every layer of a model; `cache[i]` is layer i's `LayerKVCache`.

    `position` is the number of positions held, i.e. the position of the next token: models add
    it to their positional encodings and causal masks.
    """

    def __init__(self, n_layer: int, max_len: int | None = None) -> None:
        self.max_len = max_len
        self.layers = [LayerKVCache(max_len) for _ in range(n_layer)]
        self.padding = None  # host int array (B,): row b's first padding[b] positions are padding

    def set_padding(self, padding) -> None:
        """Mark row b's first padding[b] positions (B,) as left padding, in every layer; None: no
        padding. Keys there are never attended to, and positions count from each row's first real
        token (`positions`)."""
        if padding is not None:
            padding = np.asarray(padding, dtype=np.int64)
            if padding.ndim != 1 or (padding < 0).any():
                raise ShapeError(f"KV cache padding must be a (B,) array of lengths >= 0, got {padding!r}")
        self.padding = padding
        for layer in self.layers:
            layer.padding = padding

    def positions(self, T_new: int):
        """Return the host int64 (B, T_new) positions of the next T_new tokens, counted from each
        row's first real token (padding positions get 0), or None without padding."""
        if self.padding is None:
            return None
        columns = self.position + np.arange(T_new)[None, :]  # (1, T_new)
        return np.maximum(columns - self.padding[:, None], 0)  # (B, T_new)

    def __getitem__(self, layer_index: int) -> LayerKVCache:
        return self.layers[layer_index]

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def position(self) -> int:
        """Return the number of positions held (all layers agree between forward passes)."""
        return self.layers[-1].length

    def reset(self) -> None:
        """Forget every held position in every layer."""
        for layer in self.layers:
            layer.reset()

    def __repr__(self) -> str:
        return f"KVCache(n_layer={len(self.layers)}, max_len={self.max_len}, position={self.position})"


def causal_mask_with_offset(backend, T_new: int, T_total: int) -> Tensor:
    """Return the bool (T_new, T_total) mask where new query i (position T_total-T_new+i) may see
    key j: j <= T_total - T_new + i."""
    xp = backend.xp
    offset = T_total - T_new
    allowed = xp.arange(T_total)[None, :] <= (xp.arange(T_new) + offset)[:, None]  # (T_new, T_total)
    return Tensor._wrap(allowed, backend, False, None)


def padded_causal_mask(backend, padding, T_new: int, T_total: int, groups: int = 1) -> Tensor:
    """Return the bool (B, 1, groups*T_new, T_total) mask where new query i of row b (at column
    c = T_total - T_new + i; rows g*T_new + i for each of the groups) may see key j: j <= c and j
    not padding (j >= padding[b]). A padding query sees itself, so that no row of scores is empty."""
    keys = np.arange(T_total)[None, None, :]  # (1, 1, T_total)
    columns = (np.arange(T_new) + T_total - T_new)[None, :, None]  # (1, T_new, 1)
    real = keys >= np.asarray(padding)[:, None, None]  # (B, 1, T_total)
    allowed = (keys <= columns) & (real | (keys == columns))  # (B, T_new, T_total)
    allowed = np.tile(allowed, (1, groups, 1))[:, None]  # (B, 1, groups*T_new, T_total)
    return Tensor._wrap(backend.from_host(allowed), backend, False, None)


class DotProductAttention(Module):
    """`F.scaled_dot_product_attention` as a Module without parameters, so that the queries, keys,
    values and mask that reach the attention kernel can be seen (and changed) by forward hooks:
    `tinyllm.models.inspect` reads attention patterns here without touching the fast kernels."""

    def forward(self, q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False):
        """Return softmax(q k^T / sqrt(D) + mask) v: (B, H, Tq, D) for q (B, H, Tq, D), k, v (B, H, Tk, D)."""
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)


class CausalSelfAttention(Module):
    """Multi-head self-attention where each position sees itself and the positions before it.

    Parameters are named as in GPT-2: `c_attn` projects to queries, keys and values at once
    (n_embd -> 3 n_embd) and `c_proj` mixes the heads back (n_embd -> n_embd). Dropout acts on
    the output projection only: the attention op has no dropout on its probabilities.
    """

    def __init__(self, n_embd: int, n_head: int, bias: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ShapeError(f"n_embd {n_embd} is not divisible by n_head {n_head}")
        self.n_embd, self.n_head, self.head_dim = n_embd, n_head, n_embd // n_head
        self.c_attn = Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = Linear(n_embd, n_embd, bias=bias)
        self.attend = DotProductAttention()
        self.resid_dropout = Dropout(dropout)

    def forward(self, x: Tensor, cache: LayerKVCache | None = None) -> Tensor:
        """Return the attention output (B, T, C) for x (B, T, C); with a cache, x holds only the
        new positions and attends to the cached ones too."""
        B, T, C = x.shape
        H, D = self.n_head, self.head_dim
        qkv = self.c_attn(x.reshape(B * T, C))  # (B*T, 3C)
        qkv = qkv.reshape(B, T, 3, H, D).permute(2, 0, 3, 1, 4)  # (3, B, H, T, D)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each (B, H, T, D)
        if cache is None:
            y = self.attend(q, k, v, None, True)  # (B, H, T, D)
        else:
            k, v = cache.append(k, v)  # each (B, H, T_total, D)
            T_total = k.shape[2]
            if cache.padding is not None:
                mask = padded_causal_mask(x._backend, cache.padding, T, T_total)  # (B, 1, T, T_total)
                y = self.attend(q, k, v, mask)  # (B, H, T, D)
            elif T == 1:  # the one new token may see every held position
                y = self.attend(q, k, v)  # (B, H, 1, D)
            else:
                mask = causal_mask_with_offset(x._backend, T, T_total)  # (T, T_total)
                y = self.attend(q, k, v, mask)  # (B, H, T, D)
        y = y.permute(0, 2, 1, 3).reshape(B * T, C)  # (B*T, C)
        y = self.c_proj(y)  # (B*T, C)
        return self.resid_dropout(y).reshape(B, T, C)  # (B, T, C)

    def extra_repr(self) -> str:
        return f"n_embd={self.n_embd}, n_head={self.n_head}"
