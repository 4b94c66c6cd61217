"""The functional API, `import tinyllm.nn.functional as F`, with PyTorch's signatures.

Each function is a thin wrapper over the op library (tinyllm.ops), where forward and backward
live: it maps PyTorch's arguments (class axis 1 of `cross_entropy`, `normalized_shape` of
`layer_norm`, the leading axes of `scaled_dot_product_attention`) onto the ops' forms. What the
ops do not have (class weights, label smoothing, reductions other than the mean, padding rows) is
composed here from differentiable ops. An argument PyTorch has and tinyllm does not raises
UnsupportedError naming it. Element-wise and shape ops (`exp`, `cat`, ...) are re-exported as
they are.
"""

from __future__ import annotations

import math
import numbers
from builtins import max as builtins_max

from tinyllm import ops
from tinyllm.autograd.tensor import Tensor
from tinyllm.backend import FLOAT_DTYPES, np
from tinyllm.errors import ArgumentError, DTypeError, OutOfRangeError, ShapeError, UnsupportedError
from tinyllm.ops import (
    abs,
    add,
    amax,
    amin,
    cat,
    clip,
    concatenate,
    div,
    exp,
    expand,
    log,
    logsumexp,
    masked_fill,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mul,
    neg,
    permute,
    pow,
    reshape,
    sigmoid,
    split,
    sqrt,
    squeeze,
    stack,
    std,
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
from tinyllm.ops.attention import default_scale
from tinyllm.ops.attention import scaled_dot_product_attention as _attention
from tinyllm.ops.signature import normalize_dim, torch_signature
from tinyllm.validate import check_choice, check_float, check_int

INTEGER_DTYPES = ("int64", "int32", "int16", "int8", "uint8")
REDUCTIONS = ("mean", "sum", "none")


def _unsupported(function: str, **arguments) -> None:
    """Raise UnsupportedError for the first argument given a value other than its default."""
    for name, (value, default) in arguments.items():
        if value is not default and value != default:
            raise UnsupportedError(f"{function}() does not support the argument {name!r} (got {value!r})")


# -- activations ------------------------------------------------------------------------------------
@torch_signature
def relu(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002 - PyTorch's names
    """Return max(input, 0); `inplace` is accepted and computes out of place (same result)."""
    return ops.relu(input)


@torch_signature
def gelu(input: Tensor, approximate: str = "none") -> Tensor:  # noqa: A002
    """Return GELU of input: exact erf form ("none") or tanh form ("tanh")."""
    return ops.gelu(input, approximate)


@torch_signature
def silu(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    return ops.silu(input)


def _softmax_dim(input: Tensor, dim) -> int:  # noqa: A002
    if dim is None:  # PyTorch's legacy implicit dim
        dim = 0 if input.ndim in (0, 1, 3) else 1
    return normalize_dim(dim, input.ndim, "softmax")


@torch_signature
def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:  # noqa: A002
    """Return exp(input) / sum(exp(input)) along dim, computed stably (cast to dtype first)."""
    x = input if dtype is None else input.to(dtype)
    return ops.softmax(x, _softmax_dim(x, dim))


@torch_signature
def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:  # noqa: A002
    """Return input - logsumexp(input) along dim (cast to dtype first)."""
    x = input if dtype is None else input.to(dtype)
    return ops.log_softmax(x, _softmax_dim(x, dim))


@torch_signature
def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:  # noqa: A002
    """Return input with each element zeroed with probability p and the rest scaled by 1/(1-p)
    while training; input itself in eval mode or with p = 0."""
    p = check_float("p", p, 0.0, 1.0)
    if training and p == 1.0:
        return input * 0.0
    return ops.dropout(input, p, training)


# -- layers -----------------------------------------------------------------------------------------
@torch_signature
def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:  # noqa: A002
    """Return input @ weight.T + bias: input (..., in), weight (out, in) -> (..., out)."""
    return ops.linear(input, weight, bias)


@torch_signature
def embedding(
    input: Tensor,  # noqa: A002
    weight: Tensor,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Tensor:
    """Return weight[input]: (..., dim) for integer ids (...); rows looked up as padding_idx give
    weight[padding_idx] but pass no gradient to it."""
    _unsupported("embedding", max_norm=(max_norm, None), scale_grad_by_freq=(scale_grad_by_freq, False))
    _unsupported("embedding", sparse=(sparse, False))
    out = ops.embedding(input, weight)  # (..., dim)
    if padding_idx is None:
        return out
    padding_idx = check_int("padding_idx", padding_idx, -weight.shape[0], weight.shape[0] - 1) % weight.shape[0]
    is_padding = ops.unsqueeze(ops.eq(input, padding_idx), -1)  # (..., 1)
    return ops.where(is_padding, out.detach(), out)  # (..., dim)


def _normalized(input: Tensor, normalized_shape, name: str) -> tuple:  # noqa: A002
    shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
    if not shape or input.shape[input.ndim - len(shape) :] != shape or len(shape) > input.ndim:
        raise ShapeError(f"{name}: normalized_shape {shape} does not match the last axes of input {input.shape}")
    return shape


def _flat_weight(weight: Tensor | None, shape: tuple, fill: float, like: Tensor, name: str) -> Tensor:
    if weight is None:
        return ops.full((math.prod(shape),), fill, dtype=like.dtype, device=like.device)
    if weight.shape != shape:
        raise ShapeError(f"{name}: weight of shape {weight.shape} does not match normalized_shape {shape}")
    return weight if len(shape) == 1 else ops.reshape(weight, (-1,))


@torch_signature
def layer_norm(
    input: Tensor,  # noqa: A002
    normalized_shape,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Return (input - mean) / sqrt(var + eps) * weight + bias over the last len(normalized_shape)
    axes (biased variance, as PyTorch); no weight means 1, no bias 0."""
    shape = _normalized(input, normalized_shape, "layer_norm")
    eps = check_float("eps", eps, minimum=0.0)
    flat_weight = _flat_weight(weight, shape, 1.0, input, "layer_norm")
    flat_bias = _flat_weight(bias, shape, 0.0, input, "layer_norm")
    if len(shape) == 1:
        return ops.layer_norm(input, flat_weight, flat_bias, eps)
    rows = ops.reshape(input, input.shape[: input.ndim - len(shape)] + (-1,))  # (..., prod(shape))
    return ops.reshape(ops.layer_norm(rows, flat_weight, flat_bias, eps), input.shape)


@torch_signature
def rms_norm(
    input: Tensor,  # noqa: A002
    normalized_shape,
    weight: Tensor | None = None,
    eps: float | None = None,
) -> Tensor:
    """Return input / sqrt(mean(input^2) + eps) * weight over the last len(normalized_shape) axes;
    eps=None is the machine epsilon of input's dtype."""
    shape = _normalized(input, normalized_shape, "rms_norm")
    eps = float(np.finfo(input.dtype).eps) if eps is None else check_float("eps", eps, minimum=0.0)
    flat_weight = _flat_weight(weight, shape, 1.0, input, "rms_norm")
    if len(shape) == 1:
        return ops.rms_norm(input, flat_weight, eps)
    rows = ops.reshape(input, input.shape[: input.ndim - len(shape)] + (-1,))
    return ops.reshape(ops.rms_norm(rows, flat_weight, eps), input.shape)


# -- attention --------------------------------------------------------------------------------------
def _as_heads(t: Tensor, lead: tuple) -> Tensor:
    """Return t (*lead, T, E) as (B, H, T, E) with the leading axes folded into two."""
    if len(lead) == 2:
        return t
    if len(lead) < 2:
        return ops.reshape(t, (1,) * (2 - len(lead)) + t.shape)
    return ops.reshape(t, (math.prod(lead[:-1]), lead[-1]) + t.shape[-2:])


def _mask_as_heads(mask: Tensor, lead: tuple, q_len: int, k_len: int) -> Tensor:
    if mask.ndim <= 2 or len(lead) == 2:
        return mask
    return _as_heads(ops.expand(mask, lead + (q_len, k_len)), lead)


def _repeat_heads(t: Tensor, times: int) -> Tensor:
    """Return t (B, H, T, E) with each head repeated `times` times in place: (B, H * times, T, E)."""
    B, H, T, E = t.shape  # noqa: N806
    return ops.reshape(ops.expand(ops.unsqueeze(t, 2), (B, H, times, T, E)), (B, H * times, T, E))


def _attention_with_dropout(q, k, v, mask, dropout_p, is_causal, scale) -> Tensor:
    """softmax(q k^T * scale + mask) with dropout on the probabilities, then @ v (the unfused path)."""
    scores = ops.matmul(q, ops.transpose(k, -2, -1)) * scale  # (B, H, Tq, Tk)
    if is_causal:
        causal = ops.tril(ops.ones(q.shape[-2], k.shape[-2], dtype="bool", device=q.device))  # (Tq, Tk)
        scores = ops.masked_fill(scores, ops.logical_not(causal), -math.inf)
    if mask is not None:
        if mask.dtype == "bool":
            scores = ops.masked_fill(scores, ops.logical_not(mask), -math.inf)
        else:
            scores = scores + mask
    probs = dropout(ops.softmax(scores, -1), dropout_p, True)  # (B, H, Tq, Tk)
    return ops.matmul(probs, v)  # (B, H, Tq, Ev)


@torch_signature
def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> Tensor:
    """Return softmax(query @ key^T * scale + mask) @ value: (..., L, Ev) for query (..., L, E),
    key (..., S, E), value (..., S, Ev).

    attn_mask: bool (True = may attend) or additive float, broadcastable to (..., L, S).
    is_causal: query i sees keys j <= i; with an attn_mask as well, a key must pass both (PyTorch
    refuses the pair; tinyllm's kernels take it, e.g. causal decoding of left-padded prompts).
    dropout_p > 0 drops attention probabilities (always, as
    PyTorch: pass `dropout_p if self.training else 0`). scale defaults to 1/sqrt(E). With
    enable_gqa, key and value may have fewer heads (axis -3) than query. A query whose every key
    is masked gives zeros (PyTorch gives NaN).
    """
    dropout_p = check_float("dropout_p", dropout_p, 0.0, 1.0)
    if query.ndim < 2 or key.ndim != query.ndim or value.ndim != query.ndim:
        raise ShapeError(
            f"scaled_dot_product_attention: query {query.shape}, key {key.shape} and value {value.shape} "
            "need the same number (>= 2) of dimensions"
        )
    lead = query.shape[:-2]
    q, k, v = _as_heads(query, lead), _as_heads(key, key.shape[:-2]), _as_heads(value, value.shape[:-2])
    if enable_gqa and k.shape[1] != q.shape[1]:
        if q.shape[1] % k.shape[1]:
            raise ShapeError(f"enable_gqa: {q.shape[1]} query heads are not a multiple of {k.shape[1]} key heads")
        k, v = _repeat_heads(k, q.shape[1] // k.shape[1]), _repeat_heads(v, q.shape[1] // v.shape[1])
    mask = None if attn_mask is None else _mask_as_heads(attn_mask, lead, query.shape[-2], key.shape[-2])
    scale = default_scale(query.shape[-1]) if scale is None else check_float("scale", scale)
    if dropout_p > 0.0 or k.shape != v.shape:
        out = _attention_with_dropout(q, k, v, mask, dropout_p, is_causal, scale)  # (B, H, L, Ev)
    else:
        out = _attention(q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale)  # (B, H, L, Ev)
    return ops.reshape(out, lead + out.shape[-2:])  # (..., L, Ev)


# -- losses -----------------------------------------------------------------------------------------
def _reduction(reduction: str, size_average, reduce, name: str) -> str:
    _unsupported(name, size_average=(size_average, None), reduce=(reduce, None))
    return check_choice("reduction", reduction, REDUCTIONS)


def _classes_last(input: Tensor) -> Tensor:  # noqa: A002
    """Return input (N, C, d1, ...) with the class axis moved last: (N, d1, ..., C); (C,) as is."""
    if input.ndim <= 2:
        return input
    return ops.permute(input, (0, *range(2, input.ndim), 1))


def _check_targets(
    target: Tensor, input_shape: tuple, n_classes: int, ignore_index: int, name: str, check_range: bool = True
) -> None:
    batch_shape = input_shape[:1] + input_shape[2:] if len(input_shape) > 1 else ()
    if target.dtype not in INTEGER_DTYPES:
        raise DTypeError(f"{name}: class-index targets must be integers, got dtype {target.dtype}")
    if target.shape != batch_shape:
        raise ShapeError(
            f"{name}: target of shape {target.shape} does not fit input of shape {input_shape} (classes on axis 1)"
        )
    if not check_range:
        return
    ids = target.numpy()
    bad = (ids != ignore_index) & ((ids < 0) | (ids >= n_classes))
    if bad.any():
        raise OutOfRangeError(f"{name}: target {int(ids[bad][0])} is outside [0, {n_classes}) and not ignore_index")


def _reduce(losses: Tensor, reduction: str, denominator) -> Tensor:
    if reduction == "none":
        return losses
    total = ops.sum(losses)
    return total if reduction == "sum" else total / denominator


@torch_signature
def nll_loss(
    input: Tensor,  # noqa: A002
    target: Tensor,
    weight: Tensor | None = None,
    size_average=None,
    ignore_index: int = -100,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    """Return the negative log-likelihood of log-probabilities input (N, C, d1, ...) or (C,) at
    integer targets (N, d1, ...) or (); the mean is weighted by weight[target], ignored targets
    count nowhere."""
    reduction = _reduction(reduction, size_average, reduce, "nll_loss")
    logp = _classes_last(input)  # (N, d1, ..., C)
    n_classes = logp.shape[-1]
    _check_targets(target, input.shape, n_classes, ignore_index, "nll_loss")
    is_target = ops.eq(ops.unsqueeze(target, -1), ops.arange(n_classes, device=input.device))  # (N, ..., C)
    valid = ops.astype(ops.ne(target, ignore_index), input.dtype)  # (N, ...)
    picked = ops.sum(ops.where(is_target, logp, 0.0), -1)  # (N, ...)
    if weight is not None:
        if weight.shape != (n_classes,):
            raise ShapeError(f"nll_loss: weight of shape {weight.shape} needs one entry per class ({n_classes})")
        valid = valid * ops.sum(ops.where(is_target, weight.detach(), 0.0), -1)  # w[target] (N, ...)
    return _reduce(-picked * valid, reduction, ops.sum(valid))


@torch_signature
def cross_entropy(
    input: Tensor,  # noqa: A002
    target: Tensor,
    weight: Tensor | None = None,
    size_average=None,
    ignore_index: int = -100,
    reduce=None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Return the cross-entropy of logits input (N, C, d1, ...) or (C,) against integer class
    targets (N, d1, ...) or class probabilities of input's shape, as PyTorch computes it (class
    axis 1, weights, ignore_index, reductions, label smoothing).

    The common case (integer targets, mean, no weights or smoothing) runs the fused op; the rest
    is composed from log_softmax.
    """
    reduction = _reduction(reduction, size_average, reduce, "cross_entropy")
    label_smoothing = check_float("label_smoothing", label_smoothing, 0.0, 1.0)
    if input.ndim == 0:
        raise ShapeError("cross_entropy: input needs a class axis, got a 0-d tensor")
    logits = _classes_last(input)  # (N, d1, ..., C)
    n_classes = logits.shape[-1]
    if target.dtype in FLOAT_DTYPES and target.shape == input.shape:
        return _soft_cross_entropy(logits, target, weight, reduction, label_smoothing)
    if weight is None and reduction == "mean" and label_smoothing == 0.0:
        # the fused op checks the target range itself: one look at the targets, not two
        _check_targets(target, input.shape, n_classes, ignore_index, "cross_entropy", check_range=False)
        flat_logits = ops.reshape(logits, (-1, n_classes))  # (rows, C)
        return ops.cross_entropy(flat_logits, ops.reshape(target, (-1,)), ignore_index=ignore_index)
    class_axis = 0 if input.ndim == 1 else 1
    logp = log_softmax(input, class_axis)  # (N, C, d1, ...)
    loss = nll_loss(logp, target, weight, ignore_index=ignore_index, reduction=reduction)
    if label_smoothing == 0.0:
        return loss
    logp_last = _classes_last(logp)  # (N, d1, ..., C)
    if weight is not None:
        logp_last = logp_last * weight.detach()
    valid = ops.ne(target, ignore_index)  # (N, d1, ...)
    smooth = ops.where(valid, -ops.sum(logp_last, -1), 0.0)  # (N, d1, ...)
    if reduction == "mean":
        counted = ops.astype(valid, input.dtype)  # (N, d1, ...)
        if weight is not None:
            is_target = ops.eq(ops.unsqueeze(target, -1), ops.arange(n_classes, device=input.device))
            counted = counted * ops.sum(ops.where(is_target, weight.detach(), 0.0), -1)  # w[target]
        smooth = ops.sum(smooth) / ops.sum(counted)
    elif reduction == "sum":
        smooth = ops.sum(smooth)
    return loss * (1.0 - label_smoothing) + smooth * (label_smoothing / n_classes)


def _soft_cross_entropy(logits: Tensor, target: Tensor, weight, reduction: str, label_smoothing: float) -> Tensor:
    """Cross-entropy against class probabilities; logits and target classes-last (..., C)."""
    target = _classes_last(target)
    n_classes = logits.shape[-1]
    if label_smoothing:
        target = target * (1.0 - label_smoothing) + label_smoothing / n_classes
    terms = ops.log_softmax(logits, logits.ndim - 1) * target  # (..., C)
    if weight is not None:
        terms = terms * weight.detach()
    losses = -ops.sum(terms, -1)  # (...)
    return _reduce(losses, reduction, builtins_max(1, losses.numel()))


@torch_signature
def mse_loss(
    input: Tensor,  # noqa: A002
    target: Tensor,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    """Return the mean (or sum, or each) of (input - target)^2."""
    reduction = _reduction(reduction, size_average, reduce, "mse_loss")
    if input.shape != target.shape:
        raise ShapeError(f"mse_loss: input {input.shape} and target {target.shape} differ in shape")
    squares = (input - target) * (input - target)
    if weight is not None:
        squares = squares * weight
    return _reduce(squares, reduction, builtins_max(1, squares.numel()))


# -- tensors ----------------------------------------------------------------------------------------
@torch_signature
def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """Return the int64 one-hot encoding (..., num_classes) of integer classes (...);
    num_classes=-1 takes the largest class + 1."""
    if tensor.dtype not in INTEGER_DTYPES:
        raise DTypeError(f"one_hot needs integer classes, got dtype {tensor.dtype}")
    ids = tensor.numpy()
    if ids.size and ids.min() < 0:
        raise OutOfRangeError(f"one_hot: class {int(ids.min())} is negative")
    if num_classes == -1:
        num_classes = int(ids.max()) + 1 if ids.size else 0
    check_int("num_classes", num_classes, minimum=0)
    if ids.size and ids.max() >= num_classes:
        raise OutOfRangeError(f"one_hot: class {int(ids.max())} is >= num_classes {num_classes}")
    is_class = ops.eq(ops.unsqueeze(tensor, -1), ops.arange(num_classes, device=tensor.device))
    return ops.astype(is_class, "int64")


@torch_signature
def pad(input: Tensor, pad: tuple, mode: str = "constant", value: float | None = None) -> Tensor:  # noqa: A002
    """Return input padded with `value` (0 by default): pad = (left, right) for the last axis, then
    (top, bottom) for the one before, and so on; negative amounts crop."""
    if mode != "constant":
        raise UnsupportedError(f"pad() supports mode='constant' only, got mode={mode!r}")
    amounts = [check_int("pad", n) for n in pad]
    if len(amounts) % 2 or len(amounts) // 2 > input.ndim:
        raise ArgumentError(f"pad needs pairs for at most {input.ndim} axes, got {tuple(pad)}")
    fill = 0.0 if value is None else value
    out = input
    for i in range(len(amounts) // 2):
        axis = input.ndim - 1 - i
        before, after = amounts[2 * i], amounts[2 * i + 1]
        length = out.shape[axis]
        start, stop = builtins_max(0, -before), length - builtins_max(0, -after)
        if start or stop != length:
            out = out[(slice(None),) * axis + (slice(start, builtins_max(start, stop)),)]
        pieces = []
        for amount in (before, after):
            shape = out.shape[:axis] + (builtins_max(0, amount),) + out.shape[axis + 1 :]
            pieces.append(ops.full(shape, fill, dtype=input.dtype, device=input.device))
        out = ops.cat([pieces[0], out, pieces[1]], axis)
    return out


__all__ = [
    "abs", "add", "amax", "amin", "cat", "clip", "concatenate", "cross_entropy", "div", "dropout", "embedding",
    "exp", "expand", "gelu", "layer_norm", "linear", "log", "log_softmax", "logsumexp",
    "masked_fill", "matmul", "max", "maximum", "mean", "min", "minimum", "mse_loss", "mul", "neg",
    "nll_loss", "one_hot", "pad", "permute", "pow", "relu", "reshape", "rms_norm",
    "scaled_dot_product_attention", "sigmoid", "silu", "softmax", "split", "sqrt", "squeeze",
    "stack", "std", "sub", "sum", "tanh", "transpose", "tril", "triu", "unsqueeze", "var", "where",
]  # fmt: skip
