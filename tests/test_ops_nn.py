"""Neural-network ops: activations, softmax/log_softmax, cross_entropy, embedding, layer_norm,
rms_norm, dropout, matmul; and the numerical stability of the normalized exponentials."""

from __future__ import annotations

import numpy as np
import pytest
import strategies as s
import torch
import torch.nn.functional as TF
from hypothesis import assume, given
from hypothesis import strategies as st
from op_testing import DEVICES, Case, op_test

import tinyllm as tl
import tinyllm.nn.functional as F
from tinyllm import ops


@st.composite
def unary_cases(draw, array_strategy=s.arrays, **kwarg_strategies):
    kwargs = {name: draw(strategy) for name, strategy in kwarg_strategies.items()}
    return Case((draw(array_strategy(draw(s.shapes()))),), kwargs)


def away_from_zero(shape):
    return s.arrays(shape, avoid=(0.0,))


test_relu = op_test(F.relu, torch.relu, unary_cases(away_from_zero))
test_gelu_erf = op_test(
    lambda x: F.gelu(x, approximate="none"),
    lambda x: TF.gelu(x, approximate="none"),
    unary_cases(lambda shape: s.arrays(shape, -4.0, 4.0)),
)
test_gelu_tanh = op_test(
    lambda x: F.gelu(x, approximate="tanh"),
    lambda x: TF.gelu(x, approximate="tanh"),
    unary_cases(lambda shape: s.arrays(shape, -4.0, 4.0)),
)
test_silu = op_test(F.silu, TF.silu, unary_cases(lambda shape: s.arrays(shape, -6.0, 6.0)))


@st.composite
def axis_cases(draw):
    shape = draw(s.shapes(min_dims=1))
    return Case((draw(s.arrays(shape, -4.0, 4.0)),), {"axis": draw(st.integers(-len(shape), len(shape) - 1))})


test_softmax = op_test(F.softmax, lambda x, axis: torch.softmax(x, axis), axis_cases())
test_log_softmax = op_test(F.log_softmax, lambda x, axis: torch.log_softmax(x, axis), axis_cases())


@st.composite
def cross_entropy_cases(draw):
    """Logits (..., C) and integer targets (...), some equal to ignore_index (never all)."""
    batch_shape = draw(s.shapes(min_dims=1, max_dims=2))
    n_classes = draw(st.integers(1, 5))
    ignore_index = draw(st.sampled_from([-100, 0, n_classes - 1] if n_classes > 1 else [-100]))
    targets = draw(s.integer_arrays(batch_shape, 0, n_classes))
    targets = np.where(draw(s.masks(batch_shape)), ignore_index, targets)
    targets.reshape(-1)[0] = draw(st.sampled_from([c for c in range(n_classes) if c != ignore_index]))
    logits = draw(s.arrays(batch_shape + (n_classes,), -4.0, 4.0))
    return Case((logits, targets), {"ignore_index": ignore_index})


def torch_cross_entropy(logits, targets, ignore_index):
    # PyTorch puts classes on axis 1; ours (as in GPT code) on the last axis
    n_classes = logits.shape[-1]
    return TF.cross_entropy(logits.reshape(-1, n_classes), targets.reshape(-1), ignore_index=ignore_index)


test_cross_entropy = op_test(ops.cross_entropy, torch_cross_entropy, cross_entropy_cases())


@st.composite
def embedding_cases(draw):
    n_rows, dim = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    ids = draw(s.integer_arrays(draw(s.shapes(max_dims=2)), 0, n_rows))  # repeats likely
    return Case((ids, draw(s.arrays((n_rows, dim)))))


test_embedding = op_test(F.embedding, TF.embedding, embedding_cases())


@st.composite
def norm_cases(draw, with_bias: bool):
    shape = draw(s.shapes(min_dims=1))
    dim = shape[-1]
    # rows far from constant: for a constant row the float32 result is rounding noise amplified
    # by 1/sqrt(eps), different in PyTorch and here (ours is exactly 0)
    x = draw(s.arrays(shape, -3.0, 3.0)) + np.linspace(-1.0, 1.0, dim)
    assume(dim == 1 or np.all(x.std(axis=-1) > 0.1))
    arrays = [x, draw(s.arrays((dim,)))]
    if with_bias:
        arrays.append(draw(s.arrays((dim,))))
    return Case(tuple(arrays), {"eps": draw(st.sampled_from([1e-5, 1e-2, 1.0]))})


test_layer_norm = op_test(
    lambda x, w, b, eps: F.layer_norm(x, (x.shape[-1],), w, b, eps),
    lambda x, w, b, eps: TF.layer_norm(x, (x.shape[-1],), w, b, eps),
    norm_cases(with_bias=True),
    atol=1e-4,
    rtol=1e-3,
)
test_rms_norm = op_test(
    lambda x, w, eps: F.rms_norm(x, (x.shape[-1],), w, eps),
    lambda x, w, eps: TF.rms_norm(x, (x.shape[-1],), w, eps),
    norm_cases(with_bias=False),
    atol=1e-4,
    rtol=1e-3,
)


@st.composite
def matmul_cases(draw):
    """(..., n, k) @ (..., k, m) with broadcast batch axes; either side may be 1-D."""
    n, k, m = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    batch_a, batch_b = draw(s.broadcastable_shapes(2, max_dims=2, max_side=3))
    shape_a = (k,) if draw(st.booleans()) else batch_a + (n, k)
    shape_b = (k,) if draw(st.booleans()) else batch_b + (k, m)
    return Case((draw(s.arrays(shape_a)), draw(s.arrays(shape_b))))


test_matmul = op_test(F.matmul, torch.matmul, matmul_cases())


@st.composite
def linear_cases(draw):
    """x (..., in), weight (out, in), bias (out,)."""
    batch_shape, n_in, n_out = draw(s.shapes(max_dims=2)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    return Case((draw(s.arrays(batch_shape + (n_in,))), draw(s.arrays((n_out, n_in))), draw(s.arrays((n_out,)))))


test_linear = op_test(F.linear, TF.linear, linear_cases())


# -- numerical stability: logits up to +-1e4, compared with float64 math -----------------------
def float64_log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    wide = logits.astype(np.float64)
    shifted = wide - wide.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


huge_logits = s.arrays(s.shapes(min_dims=1), -1.0, 1.0).map(lambda a: (a * 1e4).astype(np.float32))


@pytest.mark.parametrize("device", DEVICES)
@given(logits=huge_logits)
def test_softmax_and_log_softmax_are_finite_and_exact_for_logits_up_to_1e4(device, logits):
    x = tl.tensor(logits, device=device, requires_grad=True)
    log_probs = F.log_softmax(x, axis=-1)
    probs = F.softmax(x, axis=-1)
    expected = float64_log_softmax(logits)
    assert np.all(np.isfinite(log_probs.numpy())) and np.all(np.isfinite(probs.numpy()))
    np.testing.assert_allclose(log_probs.numpy(), expected, rtol=1e-6, atol=1e-6)
    # exp turns the float32 rounding of a shifted logit s into a relative error of |s| * 6e-8
    np.testing.assert_allclose(probs.numpy(), np.exp(expected), rtol=1e-5, atol=1e-30)
    (log_probs.sum() + probs.sum()).backward()
    assert np.all(np.isfinite(x.grad.numpy()))


@pytest.mark.parametrize("device", DEVICES)
@given(logits=huge_logits.filter(lambda a: a.ndim == 2), data=st.data())
def test_cross_entropy_is_finite_and_exact_for_logits_up_to_1e4(device, logits, data):
    targets = data.draw(s.integer_arrays(logits.shape[:1], 0, logits.shape[1]))
    x = tl.tensor(logits, device=device, requires_grad=True)
    loss = F.cross_entropy(x, tl.tensor(targets, device=device))
    expected = -float64_log_softmax(logits)[np.arange(len(targets)), targets].mean()
    assert np.isfinite(loss.item())
    assert loss.item() == pytest.approx(expected, rel=1e-6, abs=1e-6)
    loss.backward()
    probs = np.exp(float64_log_softmax(logits))
    probs[np.arange(len(targets)), targets] -= 1
    np.testing.assert_allclose(x.grad.numpy(), probs / len(targets), atol=1e-5 / len(targets))


@pytest.mark.parametrize("device", DEVICES)
def test_cross_entropy_with_minus_infinity_logits_of_other_classes_matches_pytorch(device):
    logits = np.array([[2.0, -np.inf, 0.5], [-np.inf, 1.0, -np.inf]], dtype=np.float32)
    targets = np.array([0, 1])
    x = tl.tensor(logits, device=device, requires_grad=True)
    loss = F.cross_entropy(x, tl.tensor(targets, device=device))
    loss.backward()
    tx = torch.tensor(logits, requires_grad=True)
    torch_loss = TF.cross_entropy(tx, torch.tensor(targets))
    torch_loss.backward()
    assert loss.item() == pytest.approx(torch_loss.item(), rel=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_cross_entropy_with_every_target_ignored_is_zero_with_zero_gradient(device):
    x = tl.tensor(np.ones((2, 3)), device=device, requires_grad=True)
    loss = F.cross_entropy(x, tl.tensor([-100, -100], device=device))
    loss.backward()
    assert loss.item() == 0.0
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((2, 3)))


# -- dropout ------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_zeroes_a_fraction_p_and_keeps_the_mean(device, p):
    tl.manual_seed(0)
    n = 20_000
    out = F.dropout(tl.ones(n, device=device), p=p, training=True).numpy()
    dropped = np.mean(out == 0)
    # binomial standard deviation sqrt(p (1-p) / n) < 0.0036: five sigma is 0.018
    assert abs(dropped - p) < 0.018
    np.testing.assert_allclose(out[out != 0], 1 / (1 - p), rtol=1e-6)
    assert abs(out.mean() - 1.0) < 5 * np.sqrt(p / (1 - p) / n)


@pytest.mark.parametrize("device", DEVICES)
def test_dropout_gradient_is_the_mask_over_one_minus_p(device):
    tl.manual_seed(1)
    p = 0.3
    x = tl.tensor(np.random.default_rng(0).standard_normal((8, 16)), device=device, requires_grad=True)
    out = F.dropout(x, p=p, training=True)
    out.sum().backward()
    kept = out.numpy() != 0
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(x.grad.numpy(), kept / (1 - p), rtol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_dropout_in_eval_mode_or_with_p_zero_is_the_identity(device):
    x = tl.randn(4, 5, device=device, requires_grad=True)
    assert F.dropout(x, p=0.5, training=False) is x
    assert F.dropout(x, p=0.0, training=True) is x


def test_dropout_rejects_p_outside_0_1():
    with pytest.raises(ValueError, match="1.0"):
        ops.dropout(tl.ones(2), p=1.0)


def test_dropout_is_reproducible_under_manual_seed():
    tl.manual_seed(5)
    first = F.dropout(tl.ones(100), p=0.5).numpy()
    tl.manual_seed(5)
    np.testing.assert_array_equal(F.dropout(tl.ones(100), p=0.5).numpy(), first)
