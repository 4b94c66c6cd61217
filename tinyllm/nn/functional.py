"""The functional API, `import tinyllm.nn.functional as F`: every op as a plain function."""

from tinyllm.ops.attention import scaled_dot_product_attention
from tinyllm.ops import (
    abs,
    add,
    cat,
    clip,
    concatenate,
    cross_entropy,
    div,
    dropout,
    embedding,
    exp,
    expand,
    gelu,
    layer_norm,
    log,
    log_softmax,
    logsumexp,
    masked_fill,
    matmul,
    max,
    maximum,
    mean,
    minimum,
    mul,
    neg,
    permute,
    pow,
    relu,
    reshape,
    rms_norm,
    sigmoid,
    silu,
    softmax,
    split,
    sqrt,
    squeeze,
    stack,
    sub,
    sum,
    tanh,
    transpose,
    tril,
    triu,
    unsqueeze,
    var,
    where,
)


def linear(x, weight, bias=None):
    """Return x @ weight.T + bias: x (..., in), weight (out, in), bias (out,) -> (..., out)."""
    out = matmul(x, transpose(weight, 0, 1))
    return out if bias is None else add(out, bias)


__all__ = [
    "abs", "add", "cat", "clip", "concatenate", "cross_entropy", "div", "dropout", "embedding",
    "exp", "expand", "gelu", "layer_norm", "linear", "log", "log_softmax", "logsumexp",
    "masked_fill", "matmul", "max", "maximum", "mean", "minimum", "mul", "neg", "permute", "pow",
    "relu", "reshape", "rms_norm", "scaled_dot_product_attention", "sigmoid", "silu", "softmax", "split", "sqrt", "squeeze",
    "stack", "sub", "sum", "tanh", "transpose", "tril", "triu", "unsqueeze", "var", "where",
]  # fmt: skip
