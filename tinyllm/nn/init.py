"""Weight initialization, `nn.init` as in PyTorch: each function fills a tensor in place (outside
autograd) and returns it.

The numbers are drawn from tinyllm's one seeded generator (`tl.manual_seed`), so they follow the
same distributions as PyTorch's but not the same samples; to compare with PyTorch, copy its
initial `state_dict()` into the tinyllm model.

Fans: for a weight (out, in, *kernel), fan_in = in * prod(kernel) and fan_out = out * prod(kernel).
"""

from __future__ import annotations

import math

from tinyllm.autograd.grad_mode import no_grad
from tinyllm.autograd.tensor import Tensor
from tinyllm.backend import RANDOM, np
from tinyllm.errors import ArgumentError, ShapeError, UnsupportedError
from tinyllm.validate import check_choice, check_float

_GAINS = {"linear": 1.0, "identity": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3, "relu": math.sqrt(2.0), "selu": 0.75}
_CONV = ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """Return the recommended gain for a nonlinearity (PyTorch's table)."""
    check_choice("nonlinearity", nonlinearity, (*_GAINS, *_CONV, "leaky_relu"))
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else check_float("param", param)
        return math.sqrt(2.0 / (1 + slope**2))
    return _GAINS.get(nonlinearity, 1.0)


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """Return (fan_in, fan_out) of a weight of at least 2 dimensions."""
    if tensor.ndim < 2:
        raise ShapeError(f"fan in and fan out need a tensor of 2 or more dimensions, got shape {tensor.shape}")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor: Tensor, mode: str) -> int:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if check_choice("mode", mode, ("fan_in", "fan_out")) == "fan_in" else fan_out


def _fill(tensor: Tensor, host) -> Tensor:
    """Write the host array into tensor in place (no graph records it); return tensor."""
    with no_grad():
        return tensor.copy_(Tensor(np.asarray(host)))


def _uniform_host(tensor: Tensor, a: float, b: float):
    return RANDOM.uniform(tensor.shape, tensor.dtype) * (b - a) + a


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    """Fill tensor with samples of U(a, b); return it."""
    _no_generator(generator)
    return _fill(tensor, _uniform_host(tensor, check_float("a", a), check_float("b", b)))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    """Fill tensor with samples of N(mean, std^2); return it."""
    _no_generator(generator)
    std = check_float("std", std, minimum=0.0)
    return _fill(tensor, RANDOM.normal(tensor.shape, "float64") * std + check_float("mean", mean))


def trunc_normal_(
    tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0, generator=None
) -> Tensor:
    """Fill tensor with samples of N(mean, std^2) redrawn until they lie in [a, b]; return it."""
    _no_generator(generator)
    mean, std = check_float("mean", mean), check_float("std", std, minimum=0.0)
    a, b = check_float("a", a), check_float("b", b)
    if a >= b:
        raise ArgumentError(f"trunc_normal_ needs a < b, got a={a}, b={b}")
    values = RANDOM.normal(tensor.shape, "float64") * std + mean
    outside = (values < a) | (values > b)
    while outside.any():  # rejection sampling: exact, and the interval holds most of the mass
        values[outside] = RANDOM.normal((int(outside.sum()),), "float64") * std + mean
        outside = (values < a) | (values > b)
    return _fill(tensor, values)


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill tensor with val; return it."""
    return _fill(tensor, np.full(tensor.shape, check_float("val", val, allow_inf=True)))


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Fill tensor with U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot); return it."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = check_float("gain", gain) * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Fill tensor with N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)); return it."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, check_float("gain", gain) * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def kaiming_uniform_(
    tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None
) -> Tensor:
    """Fill tensor with U(-b, b), b = gain * sqrt(3 / fan) (He); return it."""
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(tensor, mode))
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None
) -> Tensor:
    """Fill tensor with N(0, std^2), std = gain / sqrt(fan) (He); return it."""
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode)), generator)


def _no_generator(generator) -> None:
    if generator is not None:
        raise UnsupportedError(
            "nn.init does not support the argument 'generator': it draws from tinyllm's one generator, seeded by tl.manual_seed"
        )
