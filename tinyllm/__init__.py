"""tinyllm: a small, readable deep-learning engine and the Transformer models built on it.

import tinyllm as tl
import tinyllm.nn.functional as F

x = tl.tensor([[1.0, 2.0]], requires_grad=True)
y = F.softmax(x @ x.T * 2.0, axis=-1).sum()
y.backward()
x.grad
"""

# reachable as attributes after `import tinyllm`, as torch.nn, torch.optim and torch.utils are
from tinyllm import nn, optim, utils  # noqa: E402, I001
from tinyllm.autograd import Function, Tensor, enable_grad, is_grad_enabled, no_grad
from tinyllm.autograd.gradcheck import gradcheck
from tinyllm.backend import cuda_is_available, default_device
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
from tinyllm.ops import (
    arange,
    cat,
    concatenate,
    full,
    manual_seed,
    ones,
    ones_like,
    rand,
    randn,
    stack,
    tensor,
    tril,
    triu,
    where,
    zeros,
    zeros_like,
)

__version__ = "0.1.0"

float16, float32, float64 = "float16", "float32", "float64"
int32, int64, bool_ = "int32", "int64", "bool"

__all__ = [
    "CheckpointError", "ConfigError", "DTypeError", "DataError", "DeviceError", "Function",
    "GraphError", "OutOfRangeError", "ShapeError", "Tensor", "TinyLLMError", "TokenizerError",
    "arange", "bool_", "cat", "concatenate", "cuda_is_available", "default_device", "enable_grad",
    "float16", "float32", "float64", "full", "gradcheck", "int32", "int64", "is_grad_enabled",
    "manual_seed", "nn", "no_grad", "optim", "utils", "ones", "ones_like", "rand", "randn", "stack", "tensor", "tril",
    "triu", "where", "zeros", "zeros_like",
]  # fmt: skip
