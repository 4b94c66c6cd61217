"""Element-wise ops, with broadcasting: each checked against finite differences and PyTorch."""

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


@st.composite
def binary_cases(draw, b_strategy=s.arrays, a_strategy=s.arrays):
    """Two arrays of broadcastable shapes (size-1 and missing axes included)."""
    shape_a, shape_b = draw(s.broadcastable_shapes(2))
    return Case((draw(a_strategy(shape_a)), draw(b_strategy(shape_b))))


@st.composite
def unary_cases(draw, array_strategy=s.arrays):
    return Case((draw(array_strategy(draw(s.shapes()))),))


def away_from_zero(shape):
    return s.arrays(shape, avoid=(0.0,))


test_add = op_test(F.add, torch.add, binary_cases())
test_sub = op_test(F.sub, torch.sub, binary_cases())
test_mul = op_test(F.mul, torch.mul, binary_cases())
test_div = op_test(F.div, torch.div, binary_cases(b_strategy=lambda shape: s.arrays(shape, avoid=(0.0,), margin=0.3)))
test_neg = op_test(F.neg, torch.neg, unary_cases())
test_pow = op_test(F.pow, torch.pow, binary_cases(a_strategy=s.positive_arrays))
test_exp = op_test(F.exp, torch.exp, unary_cases())
test_log = op_test(F.log, torch.log, unary_cases(s.positive_arrays))
test_sqrt = op_test(F.sqrt, torch.sqrt, unary_cases(s.positive_arrays))
test_abs = op_test(F.abs, torch.abs, unary_cases(away_from_zero))
test_tanh = op_test(F.tanh, torch.tanh, unary_cases())
test_sigmoid = op_test(F.sigmoid, torch.sigmoid, unary_cases(lambda shape: s.arrays(shape, -8.0, 8.0)))
test_maximum = op_test(
    F.maximum,
    torch.maximum,
    binary_cases(a_strategy=s.grid_arrays, b_strategy=lambda shape: s.grid_arrays(shape, 0.05)),
)
test_minimum = op_test(
    F.minimum,
    torch.minimum,
    binary_cases(a_strategy=s.grid_arrays, b_strategy=lambda shape: s.grid_arrays(shape, 0.05)),
)


@st.composite
def pow_scalar_cases(draw):
    exponent = draw(st.sampled_from([2, 3, -1, 0.5, 1.5, -2.5]))
    return Case((draw(s.positive_arrays(draw(s.shapes()))),), {"exponent": exponent})


test_pow_scalar_exponent = op_test(lambda a, exponent: a**exponent, lambda a, exponent: a**exponent, pow_scalar_cases())


@st.composite
def where_cases(draw):
    shape_condition, shape_a, shape_b = draw(s.broadcastable_shapes(3))
    return Case((draw(s.masks(shape_condition)), draw(s.arrays(shape_a)), draw(s.arrays(shape_b))))


test_where = op_test(tl.where, torch.where, where_cases())


@pytest.mark.parametrize("device", DEVICES)
def test_where_with_python_numbers_matches_torch_in_values_and_dtype(device):
    mask = np.array([True, False, True])
    ints = np.array([1, 2, 3])
    cases = [  # (a, b): two numbers, a float and an integer tensor, an integer tensor and an int
        (2.5, -1.0),
        (2.5, ints),
        (ints, 7),
        (-4, ints),
    ]
    for a, b in cases:
        ours = tl.where(
            tl.tensor(mask, device=device),
            *[tl.tensor(v, device=device) if isinstance(v, np.ndarray) else v for v in (a, b)],
        )
        theirs = torch.where(
            torch.from_numpy(mask), *[torch.from_numpy(v) if isinstance(v, np.ndarray) else v for v in (a, b)]
        )
        assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch."), (a, b)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@st.composite
def clip_cases(draw):
    low = draw(st.none() | st.integers(-10, 0).map(lambda k: k * s.GRID_STEP))
    high = draw(st.none() | st.integers(1, 10).map(lambda k: k * s.GRID_STEP))
    if low is None and high is None:
        low = -0.5  # torch.clamp needs one bound
    # values on the 0.05-offset grid never sit on a bound, where clip has a kink
    return Case((draw(s.grid_arrays(draw(s.shapes()), 0.05)),), {"min": low, "max": high})


test_clip = op_test(F.clip, torch.clamp, clip_cases())


@st.composite
def masked_fill_cases(draw):
    shape = draw(s.shapes())
    mask_shape = draw(
        s.broadcastable_shapes(1, max_dims=len(shape)).filter(
            lambda shapes: all(m in (1, n) for m, n in zip(reversed(shapes[0]), reversed(shape)))
        )
    )[0]
    return Case((draw(s.arrays(shape)), draw(s.masks(mask_shape))), {"value": draw(s.floats(-5, 5))})


test_masked_fill = op_test(F.masked_fill, torch.masked_fill, masked_fill_cases())


# -- behaviour at the kinks, where PyTorch's convention is the specification ---------------------
@pytest.mark.parametrize("device", DEVICES)
def test_maximum_and_minimum_split_the_gradient_at_ties(device):
    a = tl.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    b = tl.tensor([1.0, 0.0, 3.0], device=device, requires_grad=True)
    (F.maximum(a, b) + F.minimum(a, b) * 2.0).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [1.5, 1.0, 1.5])
    np.testing.assert_allclose(b.grad.numpy(), [1.5, 2.0, 1.5])


@pytest.mark.parametrize("device", DEVICES)
def test_relu_abs_and_clip_gradients_at_kinks_match_pytorch(device):
    values = [-1.0, 0.0, 0.5, 1.0]
    x = tl.tensor(values, device=device, requires_grad=True)
    (F.relu(x) + F.abs(x) + F.clip(x, 0.0, 1.0)).sum().backward()
    tx = torch.tensor(values, requires_grad=True)
    (torch.relu(tx) + torch.abs(tx) + torch.clamp(tx, 0.0, 1.0)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())


@given(values=s.arrays(s.shapes(min_dims=1), -50.0, 50.0))
def test_sigmoid_stays_finite_and_exact_for_large_inputs(values):
    logits = values * 20.0  # up to +-1000: exp(1000) overflows a naive form
    out = F.sigmoid(tl.tensor(logits, dtype="float64")).numpy()
    expected = np.where(
        logits >= 0, 1 / (1 + np.exp(-np.abs(logits))), np.exp(-np.abs(logits)) / (1 + np.exp(-np.abs(logits)))
    )
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, expected, rtol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_comparisons_give_bool_tensors_without_graph(device):
    a = tl.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    for result, expected in [
        (a < 2.0, [True, False, False]),
        (a <= 2.0, [True, True, False]),
        (a > 2.0, [False, False, True]),
        (a >= 2.0, [False, True, True]),
        (a == 2.0, [False, True, False]),
        (a != 2.0, [True, False, True]),
    ]:
        assert result.dtype == "bool" and not result.requires_grad
        assert result.numpy().tolist() == expected
