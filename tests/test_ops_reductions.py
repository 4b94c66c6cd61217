"""Reductions with axis/keepdims: sum, mean, max, var, logsumexp; and the stability of logsumexp."""

from __future__ import annotations

import numpy as np
import pytest
import strategies as s
import torch
from hypothesis import given
from hypothesis import strategies as st
from op_testing import DEVICES, Case, op_test

import tinyllm as tl
import tinyllm.nn.functional as F


def torch_dims(x: torch.Tensor, axis):
    """Return our `axis` as PyTorch's `dim`: None means every axis."""
    return tuple(range(x.ndim)) if axis is None else axis


@st.composite
def reduction_cases(draw, array_strategy=s.arrays, min_dims=0):
    shape = draw(s.shapes(min_dims=min_dims))
    return Case((draw(array_strategy(shape)),), {"axis": draw(s.axes(len(shape))), "keepdims": draw(st.booleans())})


test_sum = op_test(F.sum, lambda x, axis, keepdims: torch.sum(x, torch_dims(x, axis), keepdims), reduction_cases())
test_mean = op_test(F.mean, lambda x, axis, keepdims: torch.mean(x, torch_dims(x, axis), keepdims), reduction_cases())
test_amax = op_test(
    F.amax,
    lambda x, axis, keepdims: torch.amax(x, torch_dims(x, axis), keepdims),
    reduction_cases(s.distinct_arrays),
    views=("transpose", "step"),  # a broadcast view would make ties
)
test_var = op_test(
    lambda x, axis, keepdims: F.var(x, axis, keepdim=keepdims, correction=0),
    lambda x, axis, keepdims: torch.var(x, torch_dims(x, axis), correction=0, keepdim=keepdims),
    reduction_cases(min_dims=1),
)
test_logsumexp = op_test(
    F.logsumexp, lambda x, axis, keepdims: torch.logsumexp(x, torch_dims(x, axis), keepdims), reduction_cases()
)


@st.composite
def unbiased_var_cases(draw):
    shape = draw(s.shapes(min_dims=1, min_side=2))
    return Case((draw(s.arrays(shape)),), {"axis": draw(s.axes(len(shape))), "correction": 1})


test_var_unbiased = op_test(
    F.var, lambda x, axis, correction: torch.var(x, torch_dims(x, axis), correction=correction), unbiased_var_cases()
)


@pytest.mark.parametrize("device", DEVICES)
def test_amax_splits_the_gradient_between_tied_maxima_like_torch_amax(device):
    values = [[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]
    x = tl.tensor(values, device=device, requires_grad=True)
    F.amax(x, axis=1).sum().backward()
    tx = torch.tensor(values, requires_grad=True)
    torch.amax(tx, 1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())


@pytest.mark.parametrize("device", DEVICES)
@given(values=s.arrays(s.shapes(min_dims=1), -1.0, 1.0), dtype=s.float_dtypes)
def test_logsumexp_is_finite_and_exact_for_logits_up_to_1e4(device, values, dtype):
    logits = (values * 1e4).astype(dtype)
    out = F.logsumexp(tl.tensor(logits, device=device), axis=-1).numpy()
    wide = logits.astype(np.float64)
    top = wide.max(axis=-1)
    expected = top + np.log(np.exp(wide - top[..., None]).sum(axis=-1))
    assert out.dtype == dtype and np.all(np.isfinite(out))
    tolerance = 1e-6 if dtype == "float32" else 1e-12  # absolute too: log(1 + 3e-9) is 0 in float32
    np.testing.assert_allclose(out, expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("device", DEVICES)
def test_reductions_of_a_0d_tensor_return_it(device):
    x = tl.tensor(2.5, device=device, requires_grad=True)
    total = F.sum(x) + F.mean(x) + F.max(x) + F.logsumexp(x)
    total.backward()
    assert total.shape == () and total.item() == pytest.approx(10.0)
    assert x.grad.item() == pytest.approx(4.0)


@pytest.mark.parametrize("device", DEVICES)
def test_logsumexp_of_minus_infinity_rows_matches_pytorch(device):
    values = [[-np.inf, -np.inf], [0.0, -np.inf]]
    x = tl.tensor(values, device=device, requires_grad=True)
    out = F.logsumexp(x, axis=-1)
    out.sum().backward()
    tx = torch.tensor(values, requires_grad=True)
    torch_out = torch.logsumexp(tx, -1)
    torch_out.sum().backward()
    np.testing.assert_array_equal(out.numpy(), torch_out.detach().numpy())
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())  # NaN for the -inf row, as PyTorch
