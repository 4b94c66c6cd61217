"""The CPU backend: NumPy arrays."""

from __future__ import annotations

import ctypes
import math
import os

import numpy as np

from tinyllm.backend.base import Backend

# erf(x) ~= x P(x^2) / Q(x^2) on [-4, 4] (erf is +-1 in float32 beyond): the float32 rational
# approximation of Eigen and XLA, max error 3.3e-7. The Numba kernels (kernels/norm_act_cpu.py)
# compile the same polynomial; here it is a few whole-array NumPy passes, the fallback.
_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
          -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)  # fmt: skip
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
          -1.42647390514189e-02)  # fmt: skip
_erf_exact = np.frompyfunc(math.erf, 1, 1)


def _erf(x: np.ndarray) -> np.ndarray:
    """Return erf of each element: the rational approximation in float32, libm's erf otherwise
    (exact to float64 rounding: gradient checks in float64 need it)."""
    if x.dtype != np.float32:
        return np.asarray(_erf_exact(x), dtype=x.dtype)
    x = np.clip(x, np.float32(-4.0), np.float32(4.0))
    x2 = x * x
    p = np.full_like(x, _ERF_P[0])
    for c in _ERF_P[1:]:
        p *= x2
        p += np.float32(c)
    q = np.full_like(x, _ERF_Q[0])
    for c in _ERF_Q[1:]:
        q *= x2
        q += np.float32(c)
    return x * p / q


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed array memory for reuse; return whether it agreed.

    A training step allocates and frees ~100 MB of arrays. By default glibc serves blocks above a
    threshold with fresh mmap calls and gives them back on free, so every step pays for mapping
    and zero-filling pages anew: ~30% of the GPT preset's step time here. Keeping freed memory
    in the heap (what PyTorch's caching allocator does in its own way) removes that. It changes
    the allocator of the whole process, so it is never done on import: `tinyllm.tune_for_training()`
    (which the trainer and the CLI call) asks for it, and TINYLLM_KEEP_MEMORY=0 vetoes it.
    """
    if os.environ.get("TINYLLM_KEEP_MEMORY", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): nothing to tune
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    agreed = libc.mallopt(m_mmap_threshold, 32 * 2**20)  # glibc's largest: 32 MB on 64-bit
    agreed &= libc.mallopt(m_trim_threshold, 2**30)
    agreed &= libc.mallopt(m_top_pad, 64 * 2**20)
    return bool(agreed)


def _scatter_add_rows(target, index, values):
    """target[index[i]] += values[i] for a 1-d integer index along axis 0, repeated indices
    summed: an embedding's backward. `np.add.at` does it one index at a time, 4-6x slower for
    the GPT preset's batches; here the rows are sorted by index (stably), each run of one index
    summed by `np.add.reduceat`, and every target row written once."""
    values = np.broadcast_to(values, index.shape + target.shape[1:])
    if index.dtype.kind == "i":
        index = np.where(index < 0, index + target.shape[0], index)  # -1 and n - 1: one row
    order = np.argsort(index, kind="stable")
    ids = index[order]
    starts = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
    target[ids[starts]] += np.add.reduceat(values[order], starts, axis=0)
    return target


class _NumpyNamespace:
    """NumPy as the engine's array namespace, with the functions every op calls in their fast form.

    On a small array, `np.reshape(a, shape)` costs ~1 µs in NumPy's Python-level wrapper and
    argument dispatch, `a.reshape(shape)` 0.2 µs; `np.sum` is twice `a.sum()`. These functions
    are the array API's, with its signatures, computed by the array methods; every other name is
    NumPy's own, copied into the instance so that looking one up costs what `np.exp` does.
    """

    def __init__(self) -> None:
        own = vars(type(self))
        self.__dict__.update({name: value for name, value in vars(np).items() if name not in own})

    def __getattr__(self, name: str):  # what NumPy loads on first use (np.linalg, ...)
        return getattr(np, name)

    @staticmethod
    def reshape(x, /, shape, *, copy=None):
        return x.reshape(shape) if copy is None else np.reshape(x, shape, copy=copy)

    @staticmethod
    def permute_dims(x, /, axes):
        return x.transpose(axes)

    @staticmethod
    def sum(x, /, *, axis=None, dtype=None, keepdims=False):
        return x.sum(axis=axis, dtype=dtype, keepdims=keepdims)

    @staticmethod
    def max(x, /, *, axis=None, keepdims=False):
        return x.max(axis=axis, keepdims=keepdims)

    @staticmethod
    def astype(x, dtype, /, *, copy=True, device=None):
        return x.astype(dtype, copy=copy) if device is None else np.astype(x, dtype, copy=copy, device=device)


class NumpyBackend(Backend):
    name = "cpu"
    xp = _NumpyNamespace()

    def __init__(self) -> None:
        super().__init__()
        self._native_by_name = {n: np.dtype(n) for n in self._native_by_name}
        self._name_by_native = {v: k for k, v in self._native_by_name.items()}

    def dtype_name(self, array) -> str:
        # a dict lookup: `dtype.name` builds its string in Python code and costs ~2 µs
        return self._name_by_native.get(array.dtype) or array.dtype.name

    def asarray(self, data, dtype: str | None = None):
        return np.asarray(data, dtype=dtype)

    def to_host(self, array) -> np.ndarray:
        return array

    def from_host(self, array: np.ndarray):
        return np.asarray(array)

    def scatter_add(self, target, index, values):
        if isinstance(index, np.ndarray) and index.ndim == 1 and index.dtype.kind in "iu" and index.size > 1:
            return _scatter_add_rows(target, index, values)
        np.add.at(target, index, values)
        return target

    def erf(self, array):
        return _erf(array)

    def is_contiguous(self, array) -> bool:
        return array.flags.c_contiguous
