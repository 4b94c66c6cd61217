"""In-place ops, `+=` and slice assignment under autograd, `.data`, and the version counter that
turns a change of an array backward needs into a GraphError."""

from __future__ import annotations

import numpy as np
import pytest
import strategies as s
import torch
from hypothesis import given
from hypothesis import strategies as st
from op_testing import DEVICES

import tinyllm as tl

# name: (in-place form, out-of-place form), both applied to (x, other, mask) the same way
IN_PLACE = {
    "add_": (lambda x, o, m: x.add_(o, alpha=0.5), lambda x, o, m: x + 0.5 * o),
    "sub_": (lambda x, o, m: x.sub_(o), lambda x, o, m: x - o),
    "mul_": (lambda x, o, m: x.mul_(o), lambda x, o, m: x * o),
    "div_": (lambda x, o, m: x.div_(o * o + 1.0), lambda x, o, m: x / (o * o + 1.0)),
    "clamp_": (lambda x, o, m: x.clamp_(-0.55, 0.55), lambda x, o, m: x.clamp(-0.55, 0.55)),
    "masked_fill_": (lambda x, o, m: x.masked_fill_(m, o.sum()), lambda x, o, m: x.masked_fill(m, o.sum())),
    "fill_": (lambda x, o, m: x.fill_(o.sum()), lambda x, o, m: x * 0.0 + o.sum()),
    "zero_": (lambda x, o, m: x.zero_(), lambda x, o, m: x * 0.0),
    "copy_": (lambda x, o, m: x.copy_(o), lambda x, o, m: x * 0.0 + o),
    "+=": (lambda x, o, m: x.__iadd__(o), lambda x, o, m: x + o),
    "-=": (lambda x, o, m: x.__isub__(o), lambda x, o, m: x - o),
    "*=": (lambda x, o, m: x.__imul__(o), lambda x, o, m: x * o),
    "/=": (lambda x, o, m: x.__itruediv__(o * o + 1.0), lambda x, o, m: x / (o * o + 1.0)),
    "setitem": (lambda x, o, m: x.__setitem__((Ellipsis, 0), o[..., 0]) or x, lambda x, o, m: _set_first(x, o)),
}


def _set_first(x, o):
    """x with its last dim's first column replaced by o's, written out of place."""
    columns = [o[..., :1]] + ([x[..., 1:]] if x.shape[-1] > 1 else [])
    return tl.cat(columns, dim=-1)


@st.composite
def in_place_cases(draw):
    shape = draw(s.shapes(min_dims=1))
    return draw(s.grid_arrays(shape)), draw(s.grid_arrays(shape, 0.05)), draw(s.masks(shape))


@pytest.mark.parametrize("name", IN_PLACE)
@given(case=in_place_cases())
def test_each_in_place_op_equals_its_out_of_place_form_in_values_and_gradients(name, case):
    values, other_values, mask_values = case
    in_place, out_of_place = IN_PLACE[name]
    mask = tl.tensor(mask_values)
    results, gradients = [], []
    for form in (in_place, out_of_place):
        leaf = tl.tensor(values, dtype="float64", requires_grad=True)
        other = tl.tensor(other_values, dtype="float64", requires_grad=True)
        x = leaf * 1.0  # a non-leaf: in place is allowed on it under autograd
        out = form(x, other, mask)
        results.append(out.numpy().copy())
        (out * tl.tensor(np.linspace(1.0, 2.0, out.numel()).reshape(out.shape))).sum().backward()
        gradients.append([t.grad.numpy() if t.grad is not None else np.zeros(t.shape) for t in (leaf, other)])
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12)
    for ours, expected in zip(gradients[0], gradients[1]):
        np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", IN_PLACE)
@given(case=in_place_cases())
def test_each_in_place_op_outside_a_graph_changes_the_storage_seen_by_views(name, case):
    values, other_values, mask_values = case
    in_place, out_of_place = IN_PLACE[name]
    x = tl.tensor(values)
    alias = x.data  # shares the storage, as PyTorch's .data
    returned = in_place(x, tl.tensor(other_values), tl.tensor(mask_values))
    expected = out_of_place(tl.tensor(values), tl.tensor(other_values), tl.tensor(mask_values))
    assert returned is x
    np.testing.assert_allclose(x.numpy(), expected.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(alias.numpy(), x.numpy())


def test_in_place_mul_by_a_tensor_that_requires_grad_matches_torch():
    values, factors = [[1.0, -2.0], [3.0, 0.5]], [2.0, -1.0]
    a, b = tl.tensor(values, requires_grad=True), tl.tensor(factors, requires_grad=True)
    ta, tb = torch.tensor(values, requires_grad=True), torch.tensor(factors, requires_grad=True)
    y, ty = a * 1.0, ta * 1.0
    y.mul_(b)
    ty.mul_(tb)
    (y * y).sum().backward()
    (ty * ty).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-6)


# -- the version counter: each way a saved array can change --------------------------------------
def _graph():
    a = tl.tensor([[0.5, -1.0], [2.0, 1.5]], requires_grad=True)
    b = tl.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    return a, b


CHANGES = {
    # saved input of Mul, changed in place after the product was taken
    "saved input": lambda: _product_then(lambda y, b: y.add_(1.0)),
    # saved input changed inside no_grad (a leaf: an optimizer step between forward and backward)
    "saved leaf input under no_grad": lambda: _product_then(lambda y, b: _under_no_grad(lambda: b.mul_(2.0))),
    # saved output of exp, changed in place
    "saved output": lambda: _exp_then(lambda e: e.add_(1.0)),
    # saved output, changed by slice assignment
    "saved output by slice assignment": lambda: _exp_then(lambda e: e.__setitem__((0, 0), 5.0)),
    # saved output, changed through a detached alias (detach shares the version counter)
    "saved output through detach()": lambda: _exp_then(lambda e: e.detach().zero_()),
    # saved input, changed through a view made under no_grad
    "saved input through a view": lambda: _product_then(lambda y, b: _under_no_grad(lambda: y[0].fill_(3.0))),
}


def _under_no_grad(fn):
    with tl.no_grad():
        fn()


def _product_then(change):
    a, b = _graph()
    y = a * 1.0
    z = y * b  # Mul saves y and b
    change(y, b)
    return z.sum()


def _exp_then(change):
    a, _ = _graph()
    e = a.exp()  # Exp saves its output
    change(e)
    return e.sum()


@pytest.mark.parametrize("kind", CHANGES)
def test_backward_through_an_array_changed_in_place_raises_graph_error(kind):
    loss = CHANGES[kind]()
    with pytest.raises(tl.GraphError, match="in-place"):
        loss.backward()


def test_an_in_place_change_that_backward_does_not_read_is_allowed():
    a, b = _graph()
    y = a @ b  # matmul saves a and b, not its output
    y += 1.0  # the residual pattern: x = f(x); x += skip
    y.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), np.ones((2, 2)) @ b.numpy().T)


def test_writes_through_data_are_invisible_to_the_version_counter_as_in_torch():
    a, b = _graph()
    z = (a * b).sum()
    b.data.add_(1.0)  # PyTorch's escape hatch: no error, and backward sees the new values
    z.backward()
    np.testing.assert_allclose(a.grad.numpy(), b.numpy())


@pytest.mark.parametrize("device", DEVICES)
def test_in_place_on_a_leaf_that_requires_grad_is_an_error_outside_no_grad_and_an_update_inside(device):
    p = tl.tensor([1.0, 2.0], device=device, requires_grad=True)
    with pytest.raises(tl.GraphError, match="leaf"):
        p.add_(1.0)
    with pytest.raises(tl.GraphError, match="leaf"):
        p[0] = 5.0
    with pytest.raises(tl.GraphError, match="view of a leaf"):
        p[0:1].zero_()
    (p * p).sum().backward()
    with tl.no_grad():
        p -= 0.25 * p.grad  # the first loop of every autograd tutorial
    np.testing.assert_allclose(p.numpy(), [0.5, 1.0])
    assert p.requires_grad and p.is_leaf


def test_p_data_add_with_alpha_is_the_classic_manual_update():
    p = tl.tensor([1.0, 2.0], requires_grad=True)
    (p * p).sum().backward()
    p.data.add_(p.grad, alpha=-0.5)
    np.testing.assert_allclose(p.numpy(), [0.0, 0.0])


def test_data_setter_replaces_the_storage():
    p = tl.tensor([1.0, 2.0], requires_grad=True)
    p.data = tl.tensor([3.0, 4.0, 5.0])
    assert p.shape == (3,) and p.requires_grad
    with pytest.raises(tl.DTypeError):
        p.data = [1.0]


def test_positional_encoding_table_filled_by_slice_assignment_matches_torch():
    max_len, d_model = 6, 8
    pe, tpe = tl.zeros(max_len, d_model), torch.zeros(max_len, d_model)
    position = tl.arange(0, max_len, dtype=tl.float32).unsqueeze(1)
    tposition = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
    div_term = tl.exp(tl.arange(0, d_model, 2).float() * (-np.log(10000.0) / d_model))
    tdiv_term = torch.exp(torch.arange(0, d_model, 2).float() * (-np.log(10000.0) / d_model))
    pe[:, 0::2] = tl.sin(position * div_term)
    pe[:, 1::2] = tl.cos(position * div_term)
    tpe[:, 0::2] = torch.sin(tposition * tdiv_term)
    tpe[:, 1::2] = torch.cos(tposition * tdiv_term)
    np.testing.assert_allclose(pe.numpy(), tpe.numpy(), rtol=1e-6, atol=1e-7)


def test_slice_assignment_of_a_tensor_that_requires_grad_is_differentiable_like_torch():
    values = np.arange(3.0) + 1.0
    w, tw = tl.tensor(values, requires_grad=True), torch.tensor(values, requires_grad=True)
    table, ttable = tl.zeros(2, 3, dtype="float64"), torch.zeros(2, 3, dtype=torch.float64)
    table[1] = w * w
    ttable[1] = tw * tw
    (table * table).sum().backward()
    (ttable * ttable).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy())


def test_in_place_into_an_expanded_tensor_or_a_graph_view_is_a_typed_error():
    with pytest.raises(tl.UnsupportedError, match="share memory"):
        tl.zeros(1, 3).expand(2, 3).add_(1.0)
    y = tl.ones(2, 2, requires_grad=True) * 2.0
    with pytest.raises(tl.UnsupportedError, match="view"):
        y[0].add_(1.0)


def test_in_place_keeps_the_dtype_and_refuses_float_into_int():
    x = tl.zeros(2, dtype="float16")
    x += tl.ones(2, dtype="float64")
    assert x.dtype == "float16"
    ids = tl.tensor([1, 2])
    with pytest.raises(tl.DTypeError, match="int64"):
        ids += 0.5
    ids[0] = 7.9  # assignment casts, as in PyTorch
    assert ids.tolist() == [7, 2]


def test_tensor_copies_its_data_and_from_numpy_shares_it():
    host = np.zeros(3, dtype=np.float32)
    tl.tensor(host).add_(1.0)
    assert host.tolist() == [0.0, 0.0, 0.0]
    tl.from_numpy(host).add_(1.0)
    assert host.tolist() == [1.0, 1.0, 1.0]


def test_normal_and_uniform_fill_in_place_from_the_seeded_generator():
    tl.manual_seed(3)
    first = tl.empty(1000).normal_(2.0, 0.5)
    tl.manual_seed(3)
    second = tl.empty(1000).normal_(2.0, 0.5)
    np.testing.assert_array_equal(first.numpy(), second.numpy())
    assert abs(first.mean().item() - 2.0) < 0.1 and abs(first.std().item() - 0.5) < 0.1
    box = tl.empty(1000).uniform_(-3.0, -1.0)
    assert box.min().item() >= -3.0 and box.max().item() < -1.0
