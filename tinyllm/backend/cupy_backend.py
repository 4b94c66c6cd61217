"""The GPU backend: CuPy arrays. Imported only when a CUDA device is really usable."""

from __future__ import annotations

import cupy as cp
import cupyx
import cupyx.scipy.special
import numpy as np

from tinyllm.backend.base import Backend


class CupyBackend(Backend):
    name = "cuda"
    xp = cp

    def __init__(self) -> None:
        super().__init__()
        self._native_by_name = {n: np.dtype(n) for n in self._native_by_name}  # CuPy uses NumPy's dtypes
        self._name_by_native = {v: k for k, v in self._native_by_name.items()}

    def dtype_name(self, array) -> str:
        return self._name_by_native.get(array.dtype) or array.dtype.name

    def asarray(self, data, dtype: str | None = None):
        return cp.asarray(data, dtype=dtype)

    def to_host(self, array) -> np.ndarray:
        return cp.asnumpy(array)

    def from_host(self, array: np.ndarray):
        return cp.asarray(array)

    def scatter_add(self, target, index, values):
        cupyx.scatter_add(target, index, values)
        return target

    def erf(self, array):
        return cupyx.scipy.special.erf(array)

    def is_contiguous(self, array) -> bool:
        return array.flags.c_contiguous


def cuda_is_available() -> bool:
    """Return whether CuPy can allocate on a GPU (`import cupy` alone succeeds without one)."""
    try:
        return cp.cuda.is_available() and cp.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - any CUDA driver failure means "no GPU"
        return False
