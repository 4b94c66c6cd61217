"""tinyllm: a small, readable deep-learning engine and the Transformer models built on it.

import tinyllm as tl
import tinyllm.nn.functional as F

x = tl.tensor([[1.0, 2.0]], requires_grad=True)
y = F.softmax(x @ x.T * 2.0, dim=-1).sum()
y.backward()
x.grad
"""

import importlib

from tinyllm.errors import (
    ArgumentError,
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
    UnsupportedError,
)

__version__ = "0.7.1"

# The engine's names are imported on first use (PEP 562): importing the backend loads NumPy and
# Numba (seconds), which `tinyllm --help` or `tinyllm --version` never need.
_LAZY = {
    "tinyllm.autograd": (
        "Function", "Tensor", "enable_grad", "inference_mode", "is_grad_enabled", "no_grad", "set_grad_enabled",
    ),
    "tinyllm.autograd.dtypes": ("DTYPES", "DType", "device"),
    "tinyllm.autograd.gradcheck": ("gradcheck",),
    "tinyllm.backend": ("cuda_is_available", "default_device"),
    "tinyllm.ops": (
        "abs", "add", "amax", "amin", "arange", "argmax", "argmin", "argsort", "as_tensor", "bmm", "cat",
        "chunk", "clamp", "clip", "clone", "concat", "concatenate", "cos", "cumsum", "div", "empty",
        "empty_like", "exp", "eye", "flatten", "from_dlpack", "from_numpy", "full", "full_like", "gather",
        "linspace", "log", "log_softmax", "logsumexp", "manual_seed", "masked_fill", "matmul", "max",
        "maximum", "mean", "min", "minimum", "mm", "mul", "multinomial", "norm", "ones", "ones_like",
        "permute", "pow", "rand", "rand_like", "randint", "randint_like", "randn", "randn_like", "randperm",
        "relu", "repeat", "reshape", "sigmoid", "sin", "softmax", "sort", "split", "sqrt", "squeeze",
        "stack", "std", "sub", "sum", "take_along_dim", "tanh", "tensor", "topk", "transpose", "tril",
        "triu", "unbind", "unflatten", "unsqueeze", "var", "where", "zeros", "zeros_like",
    ),
}  # fmt: skip
_HOME = {name: module for module, names in _LAZY.items() for name in names}
# PyTorch's dtype names, each one of the DType objects of tinyllm.autograd.dtypes
_DTYPE_ALIASES = {
    "float16": "float16", "float32": "float32", "float64": "float64", "int8": "int8", "int16": "int16",
    "int32": "int32", "int64": "int64", "uint8": "uint8", "bool": "bool", "bool_": "bool",
    "half": "float16", "float": "float32", "double": "float64", "long": "int64", "int": "int32",
}  # fmt: skip


def __getattr__(name: str):
    if name in _HOME:
        value = getattr(importlib.import_module(_HOME[name]), name)
    elif name in _DTYPE_ALIASES:
        value = importlib.import_module("tinyllm.autograd.dtypes").DTYPES[_DTYPE_ALIASES[name]]
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
    return sorted([*globals(), *_HOME, *_DTYPE_ALIASES])


__all__ = [
    "ArgumentError", "CheckpointError", "ConfigError", "DType", "DTypeError", "DataError", "DeviceError",
    "Function", "GraphError", "OutOfRangeError", "ShapeError", "Tensor", "TinyLLMError", "TokenizerError",
    "UnsupportedError", "abs", "add", "amax", "amin", "arange", "argmax", "argmin", "argsort", "as_tensor",
    "bmm", "bool", "bool_", "cat", "chunk", "clamp", "clip", "clone", "concat", "concatenate", "cos",
    "cuda_is_available", "cumsum", "default_device", "device", "div", "double", "empty", "empty_like",
    "enable_grad", "exp", "eye", "flatten", "float", "float16", "float32", "float64", "from_dlpack",
    "from_numpy", "full", "full_like", "gather", "gradcheck", "half", "inference_mode", "int", "int16",
    "int32", "int64", "int8", "is_grad_enabled", "linspace", "log", "log_softmax", "logsumexp", "long",
    "manual_seed", "masked_fill", "matmul", "max", "maximum", "mean", "min", "minimum", "mm", "mul",
    "multinomial", "nn", "no_grad", "norm", "ones", "ones_like", "optim", "permute", "pow", "rand",
    "rand_like", "randint", "randint_like", "randn", "randn_like", "randperm", "relu", "repeat", "reshape",
    "set_grad_enabled", "sigmoid", "sin", "softmax", "sort", "split", "sqrt", "squeeze", "stack", "std",
    "sub", "sum", "take_along_dim", "tanh", "tensor", "topk", "transpose", "tril", "triu", "uint8", "unbind",
    "unflatten", "unsqueeze", "utils", "var", "where", "zeros", "zeros_like",
]  # fmt: skip
