"""The op library: every differentiable operation, as functions on Tensors.

Each op is a `Function` subclass (forward and backward side by side, on raw arrays) plus a small
function that checks its arguments and calls `.apply`. Ops take PyTorch's argument names (`dim`,
`keepdim`), NumPy's (`axis`, `keepdims`) as aliases (ops/signature.py). Files by kind:
elementwise, activations, reductions, sorting, shape, linalg, losses, normalization, embedding;
convert makes tensors and casts them, random draws them, inplace changes them in place.
"""

import sys

from tinyllm.autograd.tensor import install_methods as _install_methods
from tinyllm.ops.activations import dropout, gelu, log_softmax, relu, silu, softmax
from tinyllm.ops.convert import (
    arange,
    as_tensor,
    astype,
    clone,
    dtype_name,
    empty,
    empty_like,
    eye,
    from_dlpack,
    from_numpy,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    raw_index,
    scalar_like,
    tensor,
    to,
    to_device,
    zeros,
    zeros_like,
)
from tinyllm.ops.elementwise import (
    abs,
    add,
    clip,
    cos,
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
    sin,
    sqrt,
    sub,
    tanh,
    where,
)
from tinyllm.ops.embedding import embedding
from tinyllm.ops.inplace import (
    add_,
    clamp_,
    clip_,
    copy_,
    div_,
    fill_,
    masked_fill_,
    mul_,
    normal_,
    setitem,
    sub_,
    uniform_,
    zero_,
)
from tinyllm.ops.linalg import bmm, linear, matmul, mm
from tinyllm.ops.losses import cross_entropy
from tinyllm.ops.normalization import layer_norm, rms_norm
from tinyllm.ops.random import (
    manual_seed,
    multinomial,
    rand,
    rand_like,
    randint,
    randint_like,
    randn,
    randn_like,
    randperm,
)
from tinyllm.ops.reductions import (
    ValuesIndices,
    amax,
    amin,
    argmax,
    argmin,
    cumsum,
    gather,
    logsumexp,
    max,
    mean,
    min,
    norm,
    std,
    sum,
    take_along_dim,
    var,
)
from tinyllm.ops.shape import (
    broadcast_to,
    cat,
    chunk,
    concatenate,
    expand,
    flatten,
    getitem,
    permute,
    repeat,
    reshape,
    split,
    squeeze,
    stack,
    transpose,
    tril,
    triu,
    unbind,
    unflatten,
    unsqueeze,
)
from tinyllm.ops.sorting import argsort, sort, topk

clamp = clip
concat = cat

__all__ = [
    "ValuesIndices", "abs", "add", "add_", "amax", "amin", "arange", "argmax", "argmin", "argsort",
    "as_tensor", "astype", "bmm", "broadcast_to", "cat", "chunk", "clamp", "clamp_", "clip", "clip_",
    "clone", "concat", "concatenate", "copy_", "cos", "cross_entropy", "cumsum", "div", "div_",
    "dropout", "dtype_name", "embedding", "empty", "empty_like", "eq", "exp", "expand", "eye",
    "fill_", "flatten", "from_dlpack", "from_numpy", "full", "full_like", "gather", "ge", "gelu", "getitem", "gt",
    "layer_norm", "le", "linear", "linspace", "log", "log_softmax", "logical_not", "logsumexp", "lt",
    "manual_seed", "masked_fill", "masked_fill_", "matmul", "max", "maximum", "mean", "min",
    "minimum", "mm", "mul", "mul_", "multinomial", "ne", "neg", "norm", "normal_", "ones",
    "ones_like", "permute", "pow", "rand", "rand_like", "randint", "randint_like", "randn",
    "randn_like", "randperm", "raw_index", "relu", "repeat", "reshape", "rms_norm", "scalar_like",
    "setitem", "sigmoid", "silu", "sin", "softmax", "sort", "split", "sqrt", "squeeze", "stack",
    "std", "sub", "sub_", "sum", "take_along_dim", "tanh", "tensor", "to", "to_device", "topk",
    "transpose", "tril", "triu", "unbind", "unflatten", "uniform_", "unsqueeze", "var", "where",
    "zero_", "zeros", "zeros_like",
]  # fmt: skip

_install_methods(sys.modules[__name__])
