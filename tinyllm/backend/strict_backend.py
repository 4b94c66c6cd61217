"""A stand-in backend on `array_api_strict` arrays.

It has no GPU and no speed; it exists so the op tests can prove that the engine uses nothing
beyond the array API standard (plus the gaps filled here), which is what lets CuPy work too.
"""

from __future__ import annotations

import array_api_strict as xp
import numpy as np

from tinyllm.backend.base import Backend
from tinyllm.backend.numpy_backend import _erf


class StrictBackend(Backend):
    name = "strict"
    xp = xp

    def to_host(self, array) -> np.ndarray:
        return np.asarray(array)

    def from_host(self, array: np.ndarray):
        return xp.asarray(np.asarray(array, order="C"))  # not ascontiguousarray: it makes 0-d arrays 1-d

    def scatter_add(self, target, index, values):
        host = np.array(self.to_host(target))
        host_index = _index_to_host(index, self)
        np.add.at(host, host_index, self.to_host(values))
        return self.from_host(host)

    def erf(self, array):
        return self.from_host(_erf(self.to_host(array)))


def _index_to_host(index, backend):
    if isinstance(index, tuple):
        return tuple(_index_to_host(i, backend) for i in index)
    if isinstance(index, xp._array_object.Array):
        return backend.to_host(index)
    return index
