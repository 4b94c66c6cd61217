"""The op library: every differentiable operation, as functions on Tensors.

Each op is a `Function` subclass (forward and backward side by side, on raw arrays) plus a small
function that checks its arguments and calls `.apply`. Files by kind: elementwise, activations,
reductions, shape, linalg, losses, normalization, embedding; convert makes tensors.
"""

from tinyllm.ops.activations import dropout, gelu, log_softmax, relu, silu, softmax
from tinyllm.ops.convert import (
    arange,
    as_tensor,
    astype,
    full,
    manual_seed,
    ones,
    ones_like,
    rand,
    randn,
    raw_index,
    tensor,
    to_device,
    zeros,
    zeros_like,
)
from tinyllm.ops.elementwise import (
    abs,
    add,
    clip,
    div,
    eq,
    exp,
    ge,
    gt,
    le,
    log,
    logical_not,
    lt,
    masked_fill,
    maximum,
    minimum,
    mul,
    ne,
    neg,
    pow,
    sigmoid,
    sqrt,
    sub,
    tanh,
    where,
)
from tinyllm.ops.embedding import embedding
from tinyllm.ops.linalg import linear, matmul
from tinyllm.ops.losses import cross_entropy
from tinyllm.ops.normalization import layer_norm, rms_norm
from tinyllm.ops.reductions import argmax, logsumexp, max, mean, sum, var
from tinyllm.ops.shape import (
    broadcast_to,
    cat,
    concatenate,
    expand,
    getitem,
    permute,
    reshape,
    split,
    squeeze,
    stack,
    transpose,
    tril,
    triu,
    unsqueeze,
)

__all__ = [
    "abs", "add", "arange", "argmax", "as_tensor", "astype", "broadcast_to", "cat", "clip",
    "concatenate", "cross_entropy", "div", "dropout", "embedding", "eq", "exp", "expand", "full",
    "ge", "gelu", "getitem", "gt", "layer_norm", "le", "linear", "log", "log_softmax", "logical_not",
    "logsumexp", "lt", "manual_seed", "masked_fill", "matmul", "max", "maximum", "mean",
    "minimum", "mul", "ne", "neg", "ones", "ones_like", "permute", "pow", "rand", "randn",
    "raw_index", "relu", "reshape", "rms_norm", "sigmoid", "silu", "softmax", "split", "sqrt",
    "squeeze", "stack", "sub", "sum", "tanh", "tensor", "to_device", "transpose", "tril", "triu",
    "unsqueeze", "var", "where", "zeros", "zeros_like",
]  # fmt: skip
