"""Hypothesis strategies for the op tests: shapes, broadcastable shapes, arrays, axes and dtypes.

Shapes may have size-0 axes where a test asks (`min_side=0`, `empty_shapes`), and 0-d shapes ()
are drawn by default. Arrays are float64 NumPy arrays (the factory in op_testing.py casts them per check). Shapes stay
small (at most 4 per side, 3 axes by default) because the finite-difference check runs the op
twice per element. Ops with kinks get inputs kept away from them:

- `floats(avoid=(0.0,))`: abs, relu at 0, clip at its bounds, log/sqrt/div near 0;
- `grid_arrays(offset)`: values on a 0.1 grid shifted by `offset`, so two arrays drawn with
  offsets 0.0 and 0.05 never tie (maximum, minimum, where);
- `distinct_arrays`: all elements different by at least 0.1 (max reduction).
"""

from __future__ import annotations

import math
import os

import hypothesis.extra.numpy as hnp
import numpy as np
from hypothesis import strategies as st

MAX_SIDE = 4
MAX_DIMS = 3
GRID_STEP = 0.1

float_dtypes = st.sampled_from(["float32", "float64"])
_SCALE = {"thorough": 10}


def examples(n: int) -> int:
    """Return the example count for a cheap property: n under the `ci` hypothesis profile, 10 n
    under `thorough` (tests/conftest.py)."""
    return n * _SCALE.get(os.environ.get("TINYLLM_HYPOTHESIS_PROFILE", "ci"), 1)


def shapes(min_dims: int = 0, max_dims: int = MAX_DIMS, min_side: int = 1, max_side: int = MAX_SIDE):
    """Shapes like (), (3,), (1, 4, 2): size-1 and larger sides."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


@st.composite
def empty_shapes(draw, min_dims: int = 1, max_dims: int = MAX_DIMS, max_side: int = MAX_SIDE):
    """Shapes with at least one size-0 axis, e.g. (0,), (3, 0), (0, 2, 1)."""
    shape = list(draw(shapes(min_dims=max(min_dims, 1), max_dims=max_dims, min_side=0, max_side=max_side)))
    if 0 not in shape:
        shape[draw(st.integers(0, len(shape) - 1))] = 0
    return tuple(shape)


def broadcastable_shapes(
    n: int = 2, min_dims: int = 0, max_dims: int = MAX_DIMS, max_side: int = MAX_SIDE, min_side: int = 1
):
    """Tuples of n shapes that broadcast together, e.g. ((3, 1), (2, 1, 4)) or ((), (2,)); with
    min_side=0 also ((0, 1), (3,)) -> (0, 3)."""
    strategy = hnp.mutually_broadcastable_shapes(
        num_shapes=n, min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
    )
    return strategy.map(lambda drawn: drawn.input_shapes)


def floats(low: float = -2.0, high: float = 2.0, avoid: tuple = (), margin: float = 0.05):
    """Finite floats in [low, high], at least `margin` away from every point in `avoid`."""
    elements = st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    if avoid:
        elements = elements.filter(lambda v: all(abs(v - point) >= margin for point in avoid))
    return elements


def arrays(shape, low: float = -2.0, high: float = 2.0, avoid: tuple = (), margin: float = 0.05):
    """Float64 arrays of `shape` with elements from `floats(low, high, avoid, margin)`."""
    return hnp.arrays(np.float64, shape, elements=floats(low, high, avoid, margin))


def positive_arrays(shape, low: float = 0.2, high: float = 3.0):
    """Float64 arrays with elements in [low, high] (log, sqrt, a divisor, a pow base)."""
    return arrays(shape, low, high)


def grid_arrays(shape, offset: float = 0.0, steps: int = 20):
    """Float64 arrays on the grid offset + GRID_STEP * k, |k| <= steps: two arrays with offsets
    differing by half a step never tie."""
    return hnp.arrays(np.float64, shape, elements=st.integers(-steps, steps).map(lambda k: offset + GRID_STEP * k))


@st.composite
def distinct_arrays(draw, shape):
    """Float64 arrays of `shape` whose elements all differ by GRID_STEP or more (no ties)."""
    size = math.prod(shape)
    order = draw(st.permutations(range(size)))
    return (np.asarray(order, dtype=np.float64).reshape(shape) - size / 2) * GRID_STEP


def integer_arrays(shape, low: int, high: int):
    """Int64 arrays of `shape` with elements in [low, high) (repeats likely: index tests need them)."""
    return hnp.arrays(np.int64, shape, elements=st.integers(low, high - 1))


def masks(shape):
    """Bool arrays of `shape`."""
    return hnp.arrays(np.bool_, shape, elements=st.booleans())


@st.composite
def axes(draw, ndim: int, allow_none: bool = True, allow_tuple: bool = True):
    """An `axis` argument for a reduction over ndim axes: None, an int (maybe negative) or a tuple."""
    choices = ["int"] + (["none"] if allow_none else []) + (["tuple"] if allow_tuple else [])
    kind = draw(st.sampled_from(choices)) if ndim else "none"
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    chosen = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(chosen)


@st.composite
def reshape_targets(draw, shape):
    """A new shape with as many elements as `shape`, sometimes with one -1."""
    size = math.prod(shape)
    factors = _prime_factors(size)
    n_dims = draw(st.integers(1, 4))
    new_shape = [1] * n_dims
    for factor in factors:
        new_shape[draw(st.integers(0, n_dims - 1))] *= factor
    if size and draw(st.booleans()):
        new_shape[draw(st.integers(0, n_dims - 1))] = -1
    return tuple(new_shape)


def _prime_factors(n: int) -> list[int]:
    factors, p = [], 2
    while n > 1:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    return factors


@st.composite
def basic_indices(draw, shape):
    """A basic index for `shape`: ints (maybe negative), slices with positive steps, None and
    Ellipsis; PyTorch, our oracle, has no negative steps."""
    parts = []
    for n in shape:
        kind = draw(st.sampled_from(["int", "slice", "all"]))
        if kind == "int":
            parts.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            start = draw(st.none() | st.integers(-n, n - 1))
            stop = draw(st.none() | st.integers(-n, n))
            parts.append(slice(start, stop, draw(st.none() | st.integers(1, 3))))
        else:
            parts.append(slice(None))
    if parts and draw(st.booleans()):
        parts.insert(draw(st.integers(0, len(parts))), None)
    cut = draw(st.integers(0, len(parts)))
    if draw(st.booleans()):
        return tuple(parts[:cut]) + (Ellipsis,) if cut < len(parts) else tuple(parts)
    return tuple(parts[:cut])
