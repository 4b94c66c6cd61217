"""Random tensors from the one seeded generator (`manual_seed`): rand, randn, randint, randperm,
their *_like forms, and multinomial sampling. Numbers are drawn on the host and copied to the
device, so a seed means the same stream on every backend."""

from __future__ import annotations

from tinyllm.autograd.tensor import Tensor
from tinyllm.backend import FLOAT_DTYPES, RANDOM, get_backend, np
from tinyllm.errors import DTypeError, ShapeError
from tinyllm.ops.convert import dtype_name, shape_arg
from tinyllm.validate import check_bool, check_int


def manual_seed(seed: int) -> None:
    """Seed the one random generator behind randn, rand, dropout and sampling."""
    RANDOM.seed(check_int("seed", seed))


def _random(host, dtype, device, requires_grad: bool) -> Tensor:
    backend = get_backend(device)
    return Tensor._wrap(backend.from_host(host.astype(dtype)), backend, False, None).requires_grad_(requires_grad)


def _float_dtype(dtype) -> str:
    name = dtype_name(dtype, "float32")
    if name not in FLOAT_DTYPES:
        raise DTypeError(f"random floats need a float dtype, got {name}")
    return name


def randn(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Return a tensor of standard-normal samples."""
    return _random(RANDOM.normal(shape_arg(size), "float64"), _float_dtype(dtype), device, requires_grad)


def rand(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Return a tensor of samples uniform on [0, 1)."""
    return _random(RANDOM.uniform(shape_arg(size), "float64"), _float_dtype(dtype), device, requires_grad)


def randint(low: int, high: int | None = None, size=(), dtype=None, device=None) -> Tensor:
    """Return a tensor of integers uniform on [low, high) (randint(high, size) starts at 0)."""
    if high is None:
        low, high = 0, low
    low, high = check_int("low", low), check_int("high", high)
    if high <= low:
        raise ShapeError(f"randint: high ({high}) must be above low ({low})")
    return _random(RANDOM.integers(low, high, shape_arg((size,))), dtype_name(dtype, "int64"), device, False)


def randperm(n: int, dtype=None, device=None) -> Tensor:
    """Return a random permutation of 0 .. n-1."""
    order = RANDOM.generator.permutation(check_int("n", n, minimum=0))
    return _random(order, dtype_name(dtype, "int64"), device, False)


def rand_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return rand(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def randn_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return randn(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def randint_like(t: Tensor, low: int, high: int | None = None, dtype=None, device=None) -> Tensor:
    return randint(low, high, t.shape, dtype=dtype or t.dtype, device=device or t.device)


def multinomial(probs: Tensor, num_samples: int, replacement: bool = False) -> Tensor:
    """Return int64 indices (..., num_samples) drawn from each row of the (unnormalized,
    non-negative) weights `probs` (...,  C); without replacement an index is drawn at most once."""
    if probs.ndim not in (1, 2):
        raise ShapeError(f"multinomial needs 1-d or 2-d weights, got shape {probs.shape}")
    num_samples = check_int("num_samples", num_samples, minimum=1)
    replacement = check_bool("replacement", replacement)
    rows = probs.numpy().astype(np.float64).reshape(-1, probs.shape[-1])
    if (rows < 0).any() or not np.isfinite(rows).all() or (rows.sum(axis=1) <= 0).any():
        raise ShapeError("multinomial: every row of weights must be finite, non-negative and not all zero")
    if not replacement and num_samples > rows.shape[1]:
        raise ShapeError(f"multinomial: {num_samples} samples without replacement from {rows.shape[1]} categories")
    samples = np.empty((rows.shape[0], num_samples), dtype=np.int64)
    for r, weights in enumerate(rows):
        for s in range(num_samples):
            samples[r, s] = RANDOM.choice_index(weights / weights.sum())
            if not replacement:
                weights = weights.copy()
                weights[samples[r, s]] = 0.0
    return _random(samples.reshape(probs.shape[:-1] + (num_samples,)), "int64", probs.device, False)
