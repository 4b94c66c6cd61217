"""tinyllm: a small, readable deep-learning engine and the Transformer models built on it.

import tinyllm as tl
import tinyllm.nn.functional as F

x = tl.tensor([[1.0, 2.0]], requires_grad=True)
y = F.softmax(x @ x.T * 2.0, axis=-1).sum()
y.backward()
x.grad
"""

import importlib

from tinyllm.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DeviceError,
    DTypeError,
    GraphError,
    OutOfRangeError,
    ShapeError,
    TinyLLMError,
    TokenizerError,
)

__version__ = "0.1.0"

float16, float32, float64 = "float16", "float32", "float64"
int32, int64, bool_ = "int32", "int64", "bool"

# The engine's names are imported on first use (PEP 562): importing the backend loads NumPy and
# Numba (seconds), which `tinyllm --help` or `tinyllm --version` never need.
_LAZY = {
    "tinyllm.autograd": ("Function", "Tensor", "enable_grad", "is_grad_enabled", "no_grad"),
    "tinyllm.autograd.gradcheck": ("gradcheck",),
    "tinyllm.backend": ("cuda_is_available", "default_device"),
    "tinyllm.ops": (
        "arange", "cat", "concatenate", "full", "manual_seed", "ones", "ones_like", "rand", "randn",
        "stack", "tensor", "tril", "triu", "where", "zeros", "zeros_like",
    ),
}  # fmt: skip
_HOME = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str):
    if name in _HOME:
        value = getattr(importlib.import_module(_HOME[name]), name)
    else:
        try:
            value = importlib.import_module(f"tinyllm.{name}")  # a subpackage: tl.nn, tl.models, ...
        except ModuleNotFoundError as error:
            if error.name != f"tinyllm.{name}":
                raise
            raise AttributeError(f"module 'tinyllm' has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])


__all__ = [
    "CheckpointError", "ConfigError", "DTypeError", "DataError", "DeviceError", "Function",
    "GraphError", "OutOfRangeError", "ShapeError", "Tensor", "TinyLLMError", "TokenizerError",
    "arange", "bool_", "cat", "concatenate", "cuda_is_available", "default_device", "enable_grad",
    "float16", "float32", "float64", "full", "gradcheck", "int32", "int64", "is_grad_enabled",
    "manual_seed", "no_grad", "ones", "ones_like", "rand", "randn", "stack", "tensor", "tril",
    "triu", "where", "zeros", "zeros_like",
]  # fmt: skip
