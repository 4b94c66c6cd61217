"""PyTorch's argument names for every op, in one place.

Ops are written with PyTorch's names (`dim`, `keepdim`). `@torch_signature` lets callers use
NumPy's names as aliases (`axis`, `keepdims`) and turns a keyword the op does not have into an
`UnsupportedError` that names it, instead of Python's TypeError or, worse, a silently ignored
argument. The check costs nothing on the common path: only a call with a keyword outside the
op's own parameters goes through the renaming.

`normalize_dim` and `normalize_dims` turn a `dim` argument into non-negative axes, with the one
error message for a dimension out of range.
"""

from __future__ import annotations

import functools
import inspect
import numbers

from tinyllm.errors import ArgumentError, ShapeError, UnsupportedError

NUMPY_NAMES = {"axis": "dim", "keepdims": "keepdim", "a_min": "min", "a_max": "max"}


def torch_signature(fn):
    """Return fn, accepting NumPy's argument names as aliases of PyTorch's and raising
    UnsupportedError for any other keyword fn does not take."""
    parameters = inspect.signature(fn).parameters
    accepted = frozenset(parameters)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    if takes_any:
        return fn

    @functools.wraps(fn)
    def op(*args, **kwargs):
        if kwargs and not accepted.issuperset(kwargs):
            kwargs = _renamed(fn.__name__, kwargs, accepted)
        return fn(*args, **kwargs)

    return op


def _renamed(op_name: str, kwargs: dict, accepted: frozenset) -> dict:
    renamed = {}
    for name, value in kwargs.items():
        if name not in accepted:
            torch_name = NUMPY_NAMES.get(name)
            if torch_name is None or torch_name not in accepted:
                raise UnsupportedError(
                    f"{op_name}() does not support the argument {name!r}; it takes {', '.join(sorted(accepted))}"
                )
            if torch_name in kwargs:
                raise ArgumentError(f"{op_name}() got both {name!r} and {torch_name!r}; pass one")
            name = torch_name
        renamed[name] = value
    return renamed


def normalize_dim(dim, ndim: int, op_name: str = "dim") -> int:
    """Return dim (an int, negative counting from the end) as an axis in [0, ndim).

    A 0-d tensor has one valid dim, 0 or -1, as in PyTorch.
    """
    if type(dim) is int and -ndim <= dim < ndim:  # the common case, checked in one line
        return dim % ndim
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise ArgumentError(f"{op_name}: dim must be an integer, got {dim!r}")
    bound = ndim or 1
    if not -bound <= dim < bound:
        raise ShapeError(f"{op_name}: dim {dim} is out of range for a tensor with {ndim} dimensions")
    return int(dim) % bound


def normalize_dims(dim, ndim: int, op_name: str = "dim") -> tuple:
    """Return dim (None for all, an int, or a sequence of ints) as a sorted tuple of distinct axes."""
    if dim is None:
        return tuple(range(ndim))
    if type(dim) is int and -ndim <= dim < ndim:  # the common case, checked in one line
        return (dim % ndim,)
    dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
    axes = tuple(sorted({normalize_dim(d, ndim, op_name) for d in dims}))
    if len(axes) != len(dims):
        raise ArgumentError(f"{op_name}: dim {dim} names an axis twice")
    if ndim == 0:
        return ()
    return axes
