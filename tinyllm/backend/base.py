"""The interface every array backend implements: an array namespace plus the few things it lacks.

The engine works on raw arrays through `backend.xp`, a namespace that follows the Python array
API standard (NumPy 2, CuPy and array_api_strict all do). What the standard does not give lives
here, one implementation per backend: scatter-add, erf, host copies and random numbers.
"""

from __future__ import annotations

import numpy as np

DTYPE_NAMES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")
FLOAT_DTYPES = ("float16", "float32", "float64")


class Backend:
    """One device's arrays: `xp` is the namespace, the methods fill the gaps of the standard."""

    name: str = ""
    xp = None

    def __init__(self) -> None:
        self._native_by_name = {n: getattr(self.xp, n) for n in DTYPE_NAMES if hasattr(self.xp, n)}
        self._name_by_native = {v: k for k, v in self._native_by_name.items()}

    # -- dtypes ---------------------------------------------------------------------------------
    def dtype(self, name: str):
        """Return the native dtype object of this backend for a dtype name like "float32"."""
        return self._native_by_name[name]

    def dtype_name(self, array) -> str:
        """Return the dtype name ("float32", "int64", ...) of an array of this backend."""
        return self._name_by_native[array.dtype]

    # -- moving data ----------------------------------------------------------------------------
    def asarray(self, data, dtype: str | None = None):
        """Return `data` (nested lists, scalars, host arrays) as an array of this backend."""
        if dtype is None:
            return self.xp.asarray(data)
        return self.xp.asarray(data, dtype=self.dtype(dtype))

    def to_host(self, array) -> np.ndarray:
        """Return a NumPy copy (or view, on the CPU) of an array of this backend."""
        raise NotImplementedError

    def from_host(self, array: np.ndarray):
        """Return a host NumPy array as an array of this backend."""
        return self.xp.asarray(array)

    # -- what the array API lacks ---------------------------------------------------------------
    def scatter_add(self, target, index, values):
        """Add `values` into `target[index]` in place, summing repeated indices; return target."""
        raise NotImplementedError

    def erf(self, array):
        """Return the error function of each element."""
        raise NotImplementedError

    def is_contiguous(self, array) -> bool:
        """Return whether the array is C-contiguous (kernels need it)."""
        return True


class HostRandom:
    """The random numbers of every backend: one seeded NumPy generator on the host.

    Drawing on the host and copying to the device keeps a seed meaning the same stream on every
    backend, and its state is plain integers, so checkpoints store it as JSON.
    """

    def __init__(self, seed: int = 0) -> None:
        self.generator = np.random.Generator(np.random.PCG64(seed))

    def seed(self, seed: int) -> None:
        self.generator = np.random.Generator(np.random.PCG64(seed))

    def get_state(self) -> dict:
        """Return the generator state as a JSON-serializable dict."""
        return self.generator.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.generator.bit_generator.state = state

    def normal(self, shape, dtype: str = "float32") -> np.ndarray:
        return self.generator.standard_normal(shape).astype(dtype)

    def uniform(self, shape, dtype: str = "float32") -> np.ndarray:
        return self.generator.random(shape).astype(dtype)

    def integers(self, low: int, high: int, shape) -> np.ndarray:
        return self.generator.integers(low, high, size=shape)

    def choice_index(self, probabilities: np.ndarray) -> int:
        """Return one index drawn with the given probabilities (1-D, summing to one)."""
        cumulative = np.cumsum(probabilities, dtype=np.float64)
        draw = self.generator.random() * cumulative[-1]
        return int(min(np.searchsorted(cumulative, draw, side="right"), len(cumulative) - 1))


RANDOM = HostRandom(0)
