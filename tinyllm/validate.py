"""Argument checks at the public boundary, written once: each returns the checked value or raises
`ArgumentError` naming the argument, the value and what was expected.

Config dataclasses call them in `__post_init__`, public functions at their top. They check
Python values (numbers, strings); array contents (token ids) are checked by `check_token_ids`.
"""

from __future__ import annotations

import math
import numbers

from tinyllm.errors import ArgumentError, OutOfRangeError


def check_int(name: str, value, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return value as an int, if it is an integer (not a bool) within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ArgumentError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ArgumentError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_float(
    name: str,
    value,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    above: float | None = None,
    below: float | None = None,
    allow_inf: bool = False,
) -> float:
    """Return value as a float, if it is a real number, not NaN, finite unless allow_inf, with
    minimum <= value <= maximum and above < value < below (each bound optional)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ArgumentError(f"{name} must be a finite number, got {value}")
    if minimum is not None and value < minimum:
        raise ArgumentError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ArgumentError(f"{name} must be <= {maximum}, got {value}")
    if above is not None and value <= above:
        raise ArgumentError(f"{name} must be > {above}, got {value}")
    if below is not None and value >= below:
        raise ArgumentError(f"{name} must be < {below}, got {value}")
    return value


def check_bool(name: str, value) -> bool:
    """Return value, if it is a bool."""
    if not isinstance(value, bool):
        raise ArgumentError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return value


def check_choice(name: str, value, choices) -> str:
    """Return value, if it is one of choices."""
    if value not in tuple(choices):
        raise ArgumentError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_str(name: str, value, allow_empty: bool = True) -> str:
    """Return value, if it is a str (non-empty unless allow_empty)."""
    if not isinstance(value, str):
        raise ArgumentError(f"{name} must be a string, got {value!r} ({type(value).__name__})")
    if not allow_empty and not value:
        raise ArgumentError(f"{name} must not be empty")
    return value


def check_token_ids(ids, vocab_size: int, name: str = "token ids"):
    """Return ids (a NumPy or backend integer array), if every id lies in [0, vocab_size).

    The one token-id range check of the engine: embeddings, models and tokenizers call it.
    """
    kind = getattr(getattr(ids, "dtype", None), "kind", None)
    if kind is not None and kind not in "iu":
        raise ArgumentError(f"{name} must be integers, got dtype {ids.dtype}")
    size = 1
    for n in ids.shape:
        size *= n
    if size:
        namespace = getattr(ids, "__array_namespace__", None)  # NumPy 2, CuPy, array_api_strict
        if namespace is not None:
            xp = namespace()
            low, high = int(xp.min(ids)), int(xp.max(ids))
        else:
            low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= vocab_size:
            bad = low if low < 0 else high
            raise OutOfRangeError(f"{name}: token id {bad} is outside [0, {vocab_size}) (vocab_size {vocab_size})")
    return ids
