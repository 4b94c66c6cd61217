"""The CPU backend: NumPy arrays."""

from __future__ import annotations

import math

import numba
import numpy as np

from tinyllm.backend.base import Backend


@numba.vectorize(["float32(float32)", "float64(float64)"], cache=True)
def _erf(x):
    return math.erf(x)


class NumpyBackend(Backend):
    name = "cpu"
    xp = np

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
        np.add.at(target, index, values)
        return target

    def erf(self, array):
        return _erf(array)

    def is_contiguous(self, array) -> bool:
        return array.flags.c_contiguous
