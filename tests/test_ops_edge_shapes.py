"""Ops on edge shapes: size-0 axes (empty batches, empty sequences, an inner dimension of 0) and
0-d tensors, each against finite differences and PyTorch through the op factory (which also
hands the ops transposed, strided and broadcast views)."""

from __future__ import annotations

import numpy as np
import strategies as s
import torch
from hypothesis import strategies as st
from op_testing import Case, op_test

import tinyllm as tl
import tinyllm.nn.functional as F


@st.composite
def empty_unary(draw, array_strategy=s.arrays):
    return Case((draw(array_strategy(draw(s.empty_shapes()))),))


@st.composite
def empty_binary(draw):
    """Two arrays broadcasting to a shape with a size-0 axis, e.g. (0, 1) and (3,)."""
    shape_a, shape_b = draw(s.broadcastable_shapes(2, min_dims=1, min_side=0).filter(_broadcasts_to_empty))
    return Case((draw(s.arrays(shape_a)), draw(s.arrays(shape_b))))


def _broadcasts_to_empty(shapes) -> bool:
    return 0 in torch.broadcast_shapes(*shapes)


@st.composite
def empty_reduction(draw):
    """An array with a size-0 axis, reduced over another (non-empty) axis or the empty one."""
    shape = draw(s.empty_shapes())
    return Case((draw(s.arrays(shape)),), {"axis": draw(s.axes(len(shape), allow_none=False))})


@st.composite
def zero_d(draw):
    return Case((draw(s.arrays(())),))


@st.composite
def matmul_with_an_empty_side(draw):
    """(M, K) @ (K, N) with one of M, K, N zero; K = 0 gives a zero (M, N) product."""
    m, k, n = draw(st.lists(st.integers(1, 3), min_size=3, max_size=3))
    sizes = [m, k, n]
    sizes[draw(st.integers(0, 2))] = 0
    m, k, n = sizes
    batch = draw(st.sampled_from([(), (2,), (0,)]))
    return Case((draw(s.arrays((*batch, m, k))), draw(s.arrays((k, n)))))


@st.composite
def softmax_rows_of_an_empty_batch(draw):
    rows, width = draw(st.sampled_from([(0, 3), (0, 1)])), draw(st.integers(1, 4))
    return Case((draw(s.arrays((*rows[:1], width))),), {"axis": -1})


@st.composite
def concatenation_with_an_empty_part(draw):
    width = draw(st.integers(1, 3))
    lengths = draw(st.lists(st.integers(0, 2), min_size=2, max_size=3).filter(lambda ls: 0 in ls))
    return Case(tuple(draw(s.arrays((n, width))) for n in lengths))


@st.composite
def layer_norm_of_no_rows(draw):
    width = draw(st.integers(1, 4))
    return Case((draw(s.arrays((0, width))), draw(s.arrays((width,))), draw(s.arrays((width,)))))


def torch_sum(x, axis):
    return torch.sum(x, axis)


test_add_with_an_empty_axis = op_test(F.add, torch.add, empty_binary())
test_mul_with_an_empty_axis = op_test(F.mul, torch.mul, empty_binary())
test_exp_of_an_empty_array = op_test(F.exp, torch.exp, empty_unary())
test_tanh_of_an_empty_array = op_test(F.tanh, torch.tanh, empty_unary())
test_gelu_of_an_empty_array = op_test(F.gelu, torch.nn.functional.gelu, empty_unary())
test_sum_with_an_empty_axis = op_test(F.sum, torch_sum, empty_reduction())
test_sum_of_a_0d_tensor = op_test(F.sum, torch.sum, zero_d())
test_exp_of_a_0d_tensor = op_test(F.exp, torch.exp, zero_d())
test_mul_of_0d_tensors = op_test(F.mul, torch.mul, st.builds(lambda a, b: Case((a, b)), s.arrays(()), s.arrays(())))
test_matmul_with_an_empty_side = op_test(F.matmul, torch.matmul, matmul_with_an_empty_side())
test_softmax_of_no_rows = op_test(F.softmax, lambda x, axis: torch.softmax(x, axis), softmax_rows_of_an_empty_batch())
test_concatenate_with_an_empty_part = op_test(
    lambda *parts: F.concatenate(list(parts), axis=0),
    lambda *parts: torch.cat(parts, 0),
    concatenation_with_an_empty_part(),
)
test_transpose_of_an_empty_array = op_test(
    lambda x: F.transpose(x, 0, -1), lambda x: torch.transpose(x, 0, -1), empty_unary()
)
test_layer_norm_of_no_rows = op_test(
    lambda x, w, b: F.layer_norm(x, w.shape, w, b),
    lambda x, w, b: torch.nn.functional.layer_norm(x, w.shape, w, b),
    layer_norm_of_no_rows(),
)


def test_reshape_of_an_empty_array_keeps_its_size():
    x = tl.zeros((0, 3), requires_grad=True)
    y = x.reshape(0, 1, 3)
    assert y.shape == (0, 1, 3)
    y.sum().backward()
    assert x.grad.shape == (0, 3)


def test_a_float64_op_after_a_float32_one_sends_float32_gradients_back():
    """float32 GELU (its Numba kernel takes float32 only) times a float64 constant: the float64
    gradient of the product reaches GELU's backward as float32, as in PyTorch."""
    values = [[-1.5, 0.25, 2.0]]
    x = tl.tensor(values, requires_grad=True)
    (F.gelu(x) * tl.tensor([[1.0, 2.0, 3.0]], dtype="float64")).sum().backward()
    x_t = torch.tensor(values, requires_grad=True)
    (torch.nn.functional.gelu(x_t) * torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)).sum().backward()
    assert x.grad.dtype == "float32"
    np.testing.assert_allclose(x.grad.numpy(), x_t.grad.numpy(), rtol=1e-6)
