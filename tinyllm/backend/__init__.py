"""Backend layer: the only place that imports an array library.

Everything above asks an array for its backend (`backend_of(array).xp`, the DeZero habit) or a
device name for one (`get_backend("cpu")`). Devices: "cpu" (NumPy), "cuda" (CuPy, only when a GPU
answers) and "strict" (array_api_strict, a test stand-in that proves backend neutrality).
The default device comes from the environment variable TINYLLM_DEVICE.
"""

from __future__ import annotations

import os

import numpy as np

from tinyllm.backend.base import FLOAT_DTYPES, RANDOM, Backend, HostRandom
from tinyllm.backend.numpy_backend import NumpyBackend
from tinyllm.errors import DeviceError

__all__ = [
    "FLOAT_DTYPES",
    "RANDOM",
    "Backend",
    "HostRandom",
    "backend_of",
    "cuda_is_available",
    "default_device",
    "get_backend",
    "np",
]

_BACKENDS: dict[str, Backend] = {"cpu": NumpyBackend()}
_BY_ARRAY_TYPE: dict[type, Backend] = {np.ndarray: _BACKENDS["cpu"]}


def cuda_is_available() -> bool:
    """Return whether the "cuda" device can be used (CuPy installed and a GPU present)."""
    try:
        from tinyllm.backend.cupy_backend import cuda_is_available as probe
    except ImportError:
        return False
    return probe()


def _load(device: str) -> Backend:
    if device == "cuda":
        if not cuda_is_available():
            raise DeviceError("device 'cuda' requested but CuPy or a CUDA GPU is not available")
        from tinyllm.backend.cupy_backend import CupyBackend

        backend = CupyBackend()
        import cupy

        _BY_ARRAY_TYPE[cupy.ndarray] = backend
    elif device == "strict":
        from tinyllm.backend.strict_backend import StrictBackend

        backend = StrictBackend()
        _BY_ARRAY_TYPE[type(backend.xp.asarray(0.0))] = backend
    else:
        raise DeviceError(f"unknown device {device!r}; expected 'cpu', 'cuda' or 'strict'")
    return backend


def get_backend(device: str | None = None) -> Backend:
    """Return the backend of a device name ("cpu", "cuda", "strict"; None means the default)."""
    device = device or default_device()
    backend = _BACKENDS.get(device)
    if backend is None:
        device = str(device).split(":")[0]
        backend = _BACKENDS.get(device) or _BACKENDS.setdefault(device, _load(device))
    return backend


def backend_of(array) -> Backend:
    """Return the backend that owns a raw array."""
    backend = _BY_ARRAY_TYPE.get(type(array))
    if backend is None:
        if isinstance(array, np.generic):
            return _BACKENDS["cpu"]
        raise DeviceError(f"no backend owns arrays of type {type(array).__name__}")
    return backend


def default_device() -> str:
    """Return the default device: $TINYLLM_DEVICE, else "cpu"."""
    return os.environ.get("TINYLLM_DEVICE", "cpu") or "cpu"
