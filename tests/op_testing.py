"""The op-test factory: one call makes the property test of a differentiable op.

    test_mul = op_test(F.mul, torch.mul, binary_cases())

draws cases (input arrays plus keyword arguments) and checks, on every device in DEVICES:
(a) autograd's gradient against central finite differences, in float64 (`tl.gradcheck`);
(b) forward and gradients against the PyTorch twin of the op, in float32 and in float64.
Float arrays of a case become tensors that require grad; integer and bool arrays (indices, ids,
masks) become constant tensors. Both functions get the tensors positionally, then the kwargs.

By default the factory also hands the op non-contiguous inputs: each float array may be replaced
by a view of a larger leaf, made by the engine's own ops (`with_views`): a transpose of the
last two axes, every other element along an axis (a step of 2), or a size-1 axis broadcast to
the drawn size. The op then sees strided or zero-stride arrays, and the gradients are checked
with respect to the leaves, through the view. `views=` narrows the kinds (a broadcast view
makes ties, which an op like `max` must not see) or turns them off.

DEVICES holds "cuda" where a GPU answers (the CuPy backend is then op-tested like the others).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import tinyllm as tl

DEVICES = ["cpu", "strict", *(["cuda"] if tl.cuda_is_available() else [])]
VIEW_KINDS = ("transpose", "step", "broadcast")
TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}
# float64 against float64 PyTorch: only rounding differs
FLOAT64_TOLERANCE = {"atol": 1e-9, "rtol": 1e-7}


@dataclass
class Case:
    """One drawn input of an op: arrays (float ones are differentiated) and keyword arguments."""

    arrays: tuple
    kwargs: dict = field(default_factory=dict)
    views: tuple = ()  # per array: None, or the view (kind, axis, size) the op sees of it

    def __repr__(self) -> str:  # hypothesis prints this for a failing example
        shown = ", ".join(f"array(shape={a.shape}, dtype={a.dtype}, values={a.tolist()})" for a in self.arrays)
        return f"Case({shown}, kwargs={self.kwargs}, views={self.views})"

    def view(self, tensors: list) -> list:
        """Return the tensors (tinyllm or torch) the op is given: each leaf through its view."""
        views = self.views or (None,) * len(tensors)
        return [t if v is None else view_of(t, v) for t, v in zip(tensors, views)]


def view_of(x, view: tuple):
    """Return the view (kind, axis, size) of a tinyllm or torch tensor, made by its own ops."""
    kind, axis, size = view
    if kind == "transpose":
        return x.transpose(-2, -1)
    if kind == "step":
        return x[(slice(None),) * axis + (slice(None, None, 2),)]
    shape = list(x.shape)
    shape[axis] = size
    return x.expand(*shape)


def _leaf_for(draw, array: np.ndarray, kinds: tuple) -> tuple[np.ndarray, tuple | None]:
    """Return (leaf, view) with view_of(leaf, view) of array's shape: equal to array for
    transposes and steps; for a broadcast, array's first slice along the axis repeated."""
    choices = [None] + [k for k in kinds if array.ndim >= (2 if k == "transpose" else 1)]
    kind = draw(st.sampled_from(choices))
    if kind is None or not is_float(array):
        return array, None
    axis = draw(st.integers(0, array.ndim - 1))
    if kind == "transpose":
        return np.ascontiguousarray(array.swapaxes(-1, -2)), ("transpose", -1, 0)
    if kind == "step":
        return np.repeat(array, 2, axis=axis), ("step", axis, 0)
    return np.ascontiguousarray(array.take([0] if array.shape[axis] else [], axis=axis)), (
        "broadcast",
        axis,
        array.shape[axis],
    )


def with_views(case_strategy, kinds: tuple = VIEW_KINDS):
    """A strategy of the Cases of case_strategy, each float array maybe replaced by a leaf and a
    view of it (see `_leaf_for`)."""

    @st.composite
    def viewed(draw):
        c = draw(case_strategy)
        if c.views:
            return c
        pairs = [_leaf_for(draw, a, kinds) for a in c.arrays]
        if all(v is None for _, v in pairs):
            return c
        return Case(tuple(leaf for leaf, _ in pairs), c.kwargs, tuple(v for _, v in pairs))

    return viewed()


def case(*arrays, **kwargs) -> Case:
    return Case(tuple(np.asarray(a) for a in arrays), kwargs)


def cases(*array_strategies, **kwarg_strategies):
    """A strategy of Cases from one strategy per array and per keyword argument."""
    return st.builds(
        lambda arrays, kwargs: Case(tuple(arrays), kwargs),
        st.tuples(*array_strategies),
        st.fixed_dictionaries(kwarg_strategies),
    )


def is_float(array: np.ndarray) -> bool:
    return array.dtype.kind == "f"


def to_tensors(c: Case, dtype: str, device: str) -> list[tl.Tensor]:
    """Return the case's arrays as tensors: float ones as `dtype` requiring grad, others constant."""
    return [
        tl.tensor(a, dtype=dtype, device=device, requires_grad=True) if is_float(a) else tl.tensor(a, device=device)
        for a in c.arrays
    ]


def to_torch(c: Case, dtype: str = "float32") -> list[torch.Tensor]:
    """Return the case's arrays as torch tensors: float ones as `dtype` requiring grad, others constant."""
    return [
        torch.tensor(a, dtype=TORCH_DTYPES[dtype], requires_grad=True) if is_float(a) else torch.from_numpy(a.copy())
        for a in c.arrays
    ]


def check_finite_differences(fn, c: Case, device: str, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Assert that autograd's float64 gradients of fn match central finite differences."""
    inputs = to_tensors(c, "float64", device)
    tl.gradcheck(lambda *tensors: fn(*c.view(list(tensors)), **c.kwargs), inputs, atol=atol, rtol=rtol)


def check_against_torch(
    fn, torch_fn, c: Case, device: str, atol: float = 1e-5, rtol: float = 1e-4, dtype: str = "float32"
) -> None:
    """Assert that fn's output and gradients in `dtype` equal those of its PyTorch twin."""
    inputs = to_tensors(c, dtype, device)
    out = fn(*c.view(inputs), **c.kwargs)
    torch_inputs = to_torch(c, dtype)
    torch_out = torch_fn(*c.view(torch_inputs), **c.kwargs)
    assert out.dtype == dtype, f"{dtype} inputs gave a {out.dtype} output"
    assert out.device == device
    expected = torch_out.detach().numpy()
    assert out.shape == expected.shape, f"shape {out.shape}, PyTorch's {expected.shape}"
    np.testing.assert_allclose(out.numpy(), expected, atol=atol, rtol=rtol, err_msg="forward differs from PyTorch")

    cotangent = np.random.default_rng(0).standard_normal(expected.shape).astype(dtype)
    out.backward(tl.tensor(cotangent, device=device))
    torch_out.backward(torch.from_numpy(cotangent))
    for position, (t, tt) in enumerate(zip(inputs, torch_inputs)):
        if not t.requires_grad:
            continue
        ours = np.zeros(t.shape, dtype) if t.grad is None else t.grad.numpy()
        theirs = np.zeros(t.shape, dtype) if tt.grad is None else tt.grad.numpy()
        assert t.grad is None or t.grad.dtype == dtype
        np.testing.assert_allclose(
            ours, theirs, atol=atol, rtol=rtol, err_msg=f"gradient of input {position} differs from PyTorch"
        )


def op_test(
    fn,
    torch_fn,
    case_strategy,
    *,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    fd_atol: float = 1e-5,
    views: tuple = VIEW_KINDS,
):
    """Return a pytest test checking fn against finite differences and torch_fn (float32 and
    float64) on every device, on the drawn cases and on views of them (`with_views`)."""
    strategy = with_views(case_strategy, views) if views else case_strategy

    @pytest.mark.parametrize("device", DEVICES)
    @given(c=strategy)
    def test(device, c):
        check_finite_differences(fn, c, device, atol=fd_atol)
        check_against_torch(fn, torch_fn, c, device, atol=atol, rtol=rtol)
        check_against_torch(fn, torch_fn, c, device, dtype="float64", **FLOAT64_TOLERANCE)

    return test
