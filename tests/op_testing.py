"""The op-test factory: one call makes the property test of a differentiable op.

    test_mul = op_test(F.mul, torch.mul, binary_cases())

draws cases (input arrays plus keyword arguments) and checks, on every device in DEVICES:
(a) autograd's gradient against central finite differences, in float64 (`tl.gradcheck`);
(b) forward and gradients against the PyTorch twin of the op, in float32.
Float arrays of a case become tensors that require grad; integer and bool arrays (indices, ids,
masks) become constant tensors. Both functions get the tensors positionally, then the kwargs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import tinyllm as tl

DEVICES = ["cpu", "strict"]


@dataclass
class Case:
    """One drawn input of an op: arrays (float ones are differentiated) and keyword arguments."""

    arrays: tuple
    kwargs: dict = field(default_factory=dict)

    def __repr__(self) -> str:  # hypothesis prints this for a failing example
        shown = ", ".join(f"array(shape={a.shape}, dtype={a.dtype}, values={a.tolist()})" for a in self.arrays)
        return f"Case({shown}, kwargs={self.kwargs})"


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


def to_torch(c: Case) -> list[torch.Tensor]:
    """Return the case's arrays as torch tensors: float32 requiring grad, others constant."""
    return [
        torch.tensor(a, dtype=torch.float32, requires_grad=True) if is_float(a) else torch.from_numpy(a.copy())
        for a in c.arrays
    ]


def check_finite_differences(fn, c: Case, device: str, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Assert that autograd's float64 gradients of fn match central finite differences."""
    inputs = to_tensors(c, "float64", device)
    tl.gradcheck(lambda *tensors: fn(*tensors, **c.kwargs), inputs, atol=atol, rtol=rtol)


def check_against_torch(fn, torch_fn, c: Case, device: str, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Assert that fn's float32 output and gradients equal those of its PyTorch twin."""
    inputs = to_tensors(c, "float32", device)
    out = fn(*inputs, **c.kwargs)
    torch_inputs = to_torch(c)
    torch_out = torch_fn(*torch_inputs, **c.kwargs)
    assert out.dtype == "float32", f"float32 inputs gave a {out.dtype} output"
    assert out.device == device
    expected = torch_out.detach().numpy()
    np.testing.assert_allclose(out.numpy(), expected, atol=atol, rtol=rtol, err_msg="forward differs from PyTorch")

    cotangent = np.random.default_rng(0).standard_normal(expected.shape).astype(np.float32)
    out.backward(tl.tensor(cotangent, device=device))
    torch_out.backward(torch.from_numpy(cotangent))
    for position, (t, tt) in enumerate(zip(inputs, torch_inputs)):
        if not t.requires_grad:
            continue
        ours = np.zeros(t.shape, np.float32) if t.grad is None else t.grad.numpy()
        theirs = np.zeros(t.shape, np.float32) if tt.grad is None else tt.grad.numpy()
        assert t.grad is None or t.grad.dtype == "float32"
        np.testing.assert_allclose(
            ours, theirs, atol=atol, rtol=rtol, err_msg=f"gradient of input {position} differs from PyTorch"
        )


def op_test(fn, torch_fn, case_strategy, *, atol: float = 1e-5, rtol: float = 1e-4, fd_atol: float = 1e-5):
    """Return a pytest test checking fn against finite differences and torch_fn on every device."""

    @pytest.mark.parametrize("device", DEVICES)
    @given(c=case_strategy)
    def test(device, c):
        check_finite_differences(fn, c, device, atol=fd_atol)
        check_against_torch(fn, torch_fn, c, device, atol=atol, rtol=rtol)

    return test
