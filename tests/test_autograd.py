"""Autograd: the backward walk, memory release, accumulation, grad modes, dtypes and gradcheck."""

from __future__ import annotations

import gc
import sys
import weakref

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from op_testing import DEVICES

import tinyllm as tl
import tinyllm.nn.functional as F
from tinyllm.autograd.function import Function


# -- the backward walk --------------------------------------------------------------------------
def test_a_10000_op_chain_backwards_without_recursion_error():
    depth = 10_000
    assert depth > sys.getrecursionlimit()
    x = tl.tensor(1.0, dtype="float64", requires_grad=True)
    y = x
    for _ in range(depth):
        y = y * 1.0001
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001**depth, rel=1e-9)


def test_a_10000_op_chain_is_freed_without_backward():
    x = tl.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y + 1.0
    probe = weakref.ref(y.grad_fn)
    del y  # deallocating a deep chain must not recurse either
    assert probe() is None


@pytest.mark.parametrize("device", DEVICES)
def test_diamond_graph_sums_the_gradients_of_both_paths(device):
    x = tl.tensor([1.0, -2.0], device=device, requires_grad=True)
    left, right = x * 2.0, x.exp()
    shared = left * right  # x reaches `shared` along two paths
    (shared + shared.tanh()).sum().backward()

    tx = torch.tensor([1.0, -2.0], requires_grad=True)
    tshared = (tx * 2.0) * tx.exp()
    (tshared + tshared.tanh()).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_one_tensor_used_twice_in_one_op_gets_both_gradients(device):
    x = tl.tensor([3.0], device=device, requires_grad=True)
    (x * x).sum().backward()
    assert x.grad.numpy().tolist() == [6.0]


OPS = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "tanh_add": (lambda a, b: (a + b).tanh(), lambda a, b: (a + b).tanh()),
    "sigmoid_mul": (lambda a, b: a.sigmoid() * b, lambda a, b: a.sigmoid() * b),
}


@given(
    steps=st.lists(
        st.tuples(st.sampled_from(sorted(OPS)), st.integers(0, 100), st.integers(0, 100)), min_size=1, max_size=12
    )
)
def test_random_graphs_with_shared_nodes_match_pytorch(steps):
    values = np.array([[0.5, -0.3], [0.2, 0.9], [-0.7, 0.1]])
    leaves = [tl.tensor(v, dtype="float64", requires_grad=True) for v in values]
    torch_leaves = [torch.tensor(v, requires_grad=True) for v in values]
    nodes, torch_nodes = list(leaves), list(torch_leaves)
    for name, i, j in steps:  # each step may reuse any earlier node: diamonds and fan-out
        ours, theirs = OPS[name]
        nodes.append(ours(nodes[i % len(nodes)], nodes[j % len(nodes)]))
        torch_nodes.append(theirs(torch_nodes[i % len(torch_nodes)], torch_nodes[j % len(torch_nodes)]))
    (nodes[-1] * nodes[-1]).sum().backward()
    (torch_nodes[-1] * torch_nodes[-1]).sum().backward()
    for leaf, torch_leaf in zip(leaves, torch_leaves):
        expected = np.zeros(2) if torch_leaf.grad is None else torch_leaf.grad.numpy()
        actual = np.zeros(2) if leaf.grad is None else leaf.grad.numpy()
        np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12)


# -- memory: what backward saves, backward frees ------------------------------------------------
def saved_arrays_of_graph(root: tl.Tensor, leaves: list[tl.Tensor]) -> list[weakref.ref]:
    """Return weak references to every array a Function of root's graph saved for backward,
    except the leaves' own data (which the leaves keep alive)."""
    leaf_ids = {id(t.array) for t in leaves}
    refs, stack, seen = [], [root], set()
    while stack:
        node = stack.pop()
        fn = node.grad_fn
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        refs += [weakref.ref(a) for a in _arrays_in(vars(fn).values()) if id(a) not in leaf_ids]
        stack += list(fn.inputs)
    return refs


def _arrays_in(values) -> list:
    """Return the NumPy arrays among values, looking inside tuples and lists (a kernel's `saved`)."""
    arrays = []
    for value in values:
        if isinstance(value, np.ndarray):
            arrays.append(value)
        elif isinstance(value, (tuple, list)):
            arrays += _arrays_in(value)
    return arrays


def test_arrays_saved_for_backward_are_released_after_backward():
    x = tl.tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True)
    w = tl.tensor(np.ones((3, 4)), requires_grad=True)
    hidden = F.gelu(x @ w).tanh()
    loss = F.log_softmax(F.layer_norm(hidden, (4,), tl.ones(4), tl.zeros(4)), axis=-1).mean()
    hidden_ref = weakref.ref(hidden)
    del hidden
    saved = saved_arrays_of_graph(loss, [x, w])
    assert len(saved) >= 6 and all(ref() is not None for ref in saved)

    loss.backward()
    gc.collect()
    assert [ref for ref in saved if ref() is not None] == []
    assert hidden_ref() is None  # intermediate tensors go too; the loss tensor itself stays usable
    assert loss.item() < 0 and loss.grad_fn.released


def test_a_graph_is_freed_without_the_garbage_collector():
    gc.disable()
    try:
        x = tl.tensor([1.0, 2.0], requires_grad=True)
        y = (x.exp() * x).sum()
        probes = [weakref.ref(y.grad_fn), weakref.ref(y.grad_fn.inputs[0])]
        del y  # no reference cycles between tensors and functions: reference counting frees all
        assert [p() for p in probes] == [None, None]
    finally:
        gc.enable()


# -- accumulation and the second backward -------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_gradients_accumulate_into_leaves_over_two_graphs(device):
    x = tl.tensor([1.0, 2.0], device=device, requires_grad=True)
    (x * 3.0).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0 + 2.0, 3.0 + 4.0])
    x.grad = None
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


@pytest.mark.parametrize("device", DEVICES)
def test_second_backward_through_a_freed_graph_raises_graph_error(device):
    x = tl.tensor([1.0, 2.0], device=device, requires_grad=True)
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(tl.GraphError, match="retain_graph=True"):
        loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])  # the failed call added nothing


@pytest.mark.parametrize("device", DEVICES)
def test_second_backward_with_retain_graph_accumulates_again(device):
    x = tl.tensor([1.0, 2.0], device=device, requires_grad=True)
    loss = (x * x).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])


def test_retain_grad_keeps_the_gradient_of_a_non_leaf():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    hidden = x * 2.0
    hidden.retain_grad()
    other = x * 3.0
    (hidden * other).sum().backward()
    np.testing.assert_array_equal(hidden.grad.numpy(), [3.0, 6.0])
    assert other.grad is None and not other.is_leaf and x.is_leaf


def test_detach_cuts_the_graph_and_shares_the_data():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    cut = (x * 2.0).detach()
    assert cut.grad_fn is None and not cut.requires_grad
    (x * cut).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])


# -- grad modes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_no_grad_builds_no_graph(device):
    x = tl.tensor([1.0, 2.0], device=device, requires_grad=True)
    with tl.no_grad():
        assert not tl.is_grad_enabled()
        y = (x * 2.0).exp().sum()
        with tl.enable_grad():
            z = x * 2.0
    assert tl.is_grad_enabled()
    assert y.grad_fn is None and not y.requires_grad
    assert z.grad_fn is not None and z.requires_grad


def test_no_grad_works_as_a_decorator_and_restores_the_mode_after_an_error():
    @tl.no_grad()
    def double(t):
        return t * 2.0

    x = tl.tensor([1.0], requires_grad=True)
    assert double(x).grad_fn is None
    with pytest.raises(ZeroDivisionError), tl.no_grad():
        raise ZeroDivisionError
    assert tl.is_grad_enabled() and (x * 2.0).requires_grad


def test_enable_grad_works_as_a_decorator_inside_no_grad_as_in_torch():
    def double(t):
        return t * 2.0

    for lib in (tl, torch):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        with lib.no_grad():
            y = lib.enable_grad()(double)(x)
            assert not lib.is_grad_enabled()
        assert y.requires_grad and y.grad_fn is not None, lib.__name__
        y.sum().backward()
        assert x.grad.tolist() == [2.0, 2.0]


def test_an_array_on_the_left_of_at_is_refused_as_torch_refuses_it():
    values = np.ones((2, 2), np.float32)
    with pytest.raises(TypeError):
        values @ torch.ones(2, 2)
    with pytest.raises((TypeError, AttributeError)):  # not a product, and not None
        values @ tl.ones(2, 2)


def test_ops_on_tensors_without_requires_grad_record_nothing():
    y = tl.tensor([1.0]) * tl.tensor([2.0])
    assert y.grad_fn is None and not y.requires_grad


# -- dtypes -------------------------------------------------------------------------------------
def test_float32_is_the_default_dtype():
    assert tl.tensor([1.0, 2.0]).dtype == tl.float32 == "float32"
    assert tl.tensor(1.5).dtype == tl.float32
    assert tl.zeros(2).dtype == tl.ones(2).dtype == tl.randn(2).dtype == tl.rand(2).dtype == "float32"
    assert tl.tensor([1, 2]).dtype == tl.int64
    assert tl.tensor([True]).dtype == tl.bool_
    assert tl.tensor(np.array([1.0, 2.0])).dtype == tl.float64  # NumPy arrays keep their dtype
    assert tl.tensor(np.float64(1.5)).dtype == tl.float64


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_python_scalars_take_the_dtype_of_the_tensor(device, dtype):
    x = tl.tensor([1.0, 2.0], dtype=dtype, device=device, requires_grad=True)
    results = [x + 1.5, 1.5 + x, x - 2, 2 - x, x * 0.1, 0.1 * x, x / 3, 3 / x, x**2, x**0.5, 2.0**x]
    results += [F.maximum(x, 1.5), F.minimum(0.5, x), F.masked_fill(x, x > 1.5, -1e9), F.clip(x, 0.1, 1.9)]
    results += [tl.where(x > 1.5, x, 0.0), tl.where(x > 1.5, 0.0, x)]
    assert [r.dtype for r in results] == [dtype] * len(results)
    sum(r.sum() for r in results).backward()
    assert x.grad.dtype == dtype


@pytest.mark.parametrize("device", DEVICES)
def test_float64_flows_through_ops_and_gradients(device):
    x = tl.tensor(np.array([[0.1, 0.2, 0.3]]), device=device, requires_grad=True)
    w = tl.tensor(np.ones((3, 2)), device=device, requires_grad=True)
    loss = F.cross_entropy(F.gelu(x @ w), tl.tensor([1], device=device))
    assert loss.dtype == "float64"
    loss.backward()
    assert x.grad.dtype == w.grad.dtype == "float64"


@pytest.mark.parametrize("device", DEVICES)
def test_integer_tensors_cannot_require_grad(device):
    with pytest.raises(tl.DTypeError, match="int64"):
        tl.tensor([1, 2], device=device, requires_grad=True)
    with pytest.raises(tl.DTypeError):
        tl.zeros(2, dtype="int32", device=device, requires_grad=True)
    with pytest.raises(tl.DTypeError):
        tl.tensor([True], device=device).requires_grad_()
    x = tl.tensor([1.0], device=device, requires_grad=True)
    as_integers = x.to("int64")  # as in PyTorch: a constant, cut from the graph
    assert as_integers.dtype == "int64" and not as_integers.requires_grad


@pytest.mark.parametrize("device", DEVICES)
def test_a_leaf_gradient_has_the_dtype_of_its_leaf_in_a_mixed_dtype_graph(device):
    x = tl.tensor([1.0, 2.0], device=device, requires_grad=True)
    y = x * tl.tensor(np.array([3.0, 4.0]), device=device)  # float32 * float64 -> float64, as in PyTorch
    assert y.dtype == "float64"
    y.sum().backward()
    assert x.grad.dtype == "float32" and x.grad.numpy().tolist() == [3.0, 4.0]


@pytest.mark.parametrize("device", DEVICES)
def test_numpy_scalars_keep_their_dtype_on_every_device(device):
    assert tl.tensor(np.float64(1.5), device=device).dtype == "float64"
    assert tl.tensor(np.float32(1.5), device=device).dtype == "float32"


def test_astype_between_floats_is_differentiable():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    y = x.double() * 3.0
    assert y.dtype == "float64"
    y.sum().backward()
    assert x.grad.dtype == "float32" and x.grad.numpy().tolist() == [3.0, 3.0]


class ScaleFirst(Function):
    """3a, ignoring b: its backward gives None for b, as a PyTorch Function may."""

    def forward(self, a, b):
        return a * 3.0

    def backward(self, grad):
        return grad * 3.0, None


class TorchScaleFirst(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b):  # noqa: ARG004 - b is ignored on purpose
        return a * 3.0

    @staticmethod
    def backward(ctx, grad):  # noqa: ARG004
        return grad * 3.0, None


def test_a_none_gradient_for_an_input_that_requires_grad_leaves_its_grad_none_as_in_torch():
    a, b = tl.tensor([1.0, 2.0], requires_grad=True), tl.tensor([5.0, 6.0], requires_grad=True)
    (ScaleFirst.apply(a, b) * b).sum().backward()
    a_t, b_t = torch.tensor([1.0, 2.0], requires_grad=True), torch.tensor([5.0, 6.0], requires_grad=True)
    (TorchScaleFirst.apply(a_t, b_t) * b_t).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), a_t.grad.numpy())
    np.testing.assert_allclose(b.grad.numpy(), b_t.grad.numpy())  # only through the product
    c = tl.tensor([1.0, 2.0], requires_grad=True)
    ScaleFirst.apply(a, c).sum().backward()
    assert c.grad is None


# -- gradcheck, the teaching tool ---------------------------------------------------------------
class WrongSquare(Function):
    """x ** 2 with a deliberately wrong backward (x instead of 2x)."""

    def forward(self, a):
        self.a = a
        return a * a

    def backward(self, grad):
        return grad * self.a


def test_gradcheck_accepts_a_right_gradient_and_rejects_a_wrong_one():
    x = tl.tensor(np.array([[1.0, -2.0, 0.5]]), requires_grad=True)
    assert tl.gradcheck(lambda t: (t * t).sum(), [x])
    assert not tl.gradcheck(lambda t: WrongSquare.apply(t), [x], raise_exception=False)
    with pytest.raises(AssertionError, match="input 0"):
        tl.gradcheck(lambda t: WrongSquare.apply(t), [x])


def test_gradcheck_checks_only_inputs_that_require_grad():
    x = tl.tensor(np.array([1.0, 2.0]), requires_grad=True)
    constant = tl.tensor(np.array([3.0, 4.0]))
    assert tl.gradcheck(lambda a, b: a * b, [x, constant])


def test_gradcheck_leaves_the_global_random_stream_alone():
    tl.manual_seed(3)
    expected = tl.randn(3).numpy()
    tl.manual_seed(3)
    tl.gradcheck(lambda t: t.tanh(), [tl.tensor(np.array([0.1, 0.2]), requires_grad=True)])
    np.testing.assert_array_equal(tl.randn(3).numpy(), expected)


# -- the Tensor API around autograd -------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_tensor_properties_and_conversions(device):
    x = tl.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], device=device, requires_grad=True)
    assert x.shape == (2, 3) and x.ndim == 2 and len(x) == 2 and x.numel() == 6
    assert x.size() == (2, 3) and x.size(1) == 3 and x.device == device
    assert x.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert isinstance(x.numpy(), np.ndarray) and x[1, 2].item() == 6.0 and float(x[0, 0]) == 1.0
    assert repr(x).startswith("tensor([[1., 2., 3.],") and f"device='{device}'" in repr(x)
    assert "requires_grad=True" in repr(x)


def test_backward_of_a_scalar_leaf_gives_one():
    x = tl.tensor(2.0, requires_grad=True)
    x.backward()
    assert x.grad.item() == 1.0


def test_a_removed_post_accumulate_grad_hook_is_not_called_again():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    calls = []
    handle = x.register_post_accumulate_grad_hook(lambda t: calls.append(t.grad.numpy().tolist()))
    (x * 3.0).sum().backward()
    handle.remove()
    (x * 3.0).sum().backward()
    assert calls == [[3.0, 3.0]] and x.grad.numpy().tolist() == [6.0, 6.0]


@pytest.mark.parametrize("order", ["pieces first", "whole first", "pieces only"])
def test_gradients_of_pieces_and_the_whole_add_up_as_in_pytorch(order):
    """GetItem's backward hands run_backward an IndexedGrad, added in place into the input's
    gradient: pieces (a split into q, k, v), the whole and a new axis must still sum exactly."""
    values = np.random.default_rng(0).standard_normal((3, 2, 4))

    def loss(x):
        pieces = x[0] * 2.0 + x[1, :, None].sum(-1) * 3.0 + x[2, 1:].sum() * x[2, :1]
        whole = (x * x).sum()
        if order == "pieces first":
            return pieces.sum() + whole
        if order == "whole first":
            return whole + pieces.sum()
        return pieces.sum() + x[0, 0].sum()

    ours = tl.tensor(values, requires_grad=True)
    loss(ours).backward()
    theirs = torch.tensor(values, requires_grad=True)
    loss(theirs).backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_pieces_of_a_permuted_tensor_give_a_gradient_in_the_tensors_own_layout():
    # q, k, v cut from one projection (B, T, 3, H) permuted to (3, B, H, T), as attention does:
    # the projection's gradient comes back C-contiguous, so the Linear before it needs no copy
    x = tl.tensor(np.random.default_rng(0).standard_normal((2, 5, 3, 4)), requires_grad=True)
    pieces = x.permute(2, 0, 3, 1)
    loss = (pieces[0] * 1.0 + pieces[1] * 2.0 + pieces[2] * 3.0).sum()
    loss.backward()
    want = np.broadcast_to(np.array([1.0, 2.0, 3.0])[:, None], (2, 5, 3, 4))
    np.testing.assert_array_equal(x.grad.numpy(), want)
    assert x.grad.array.flags.c_contiguous


PIECES = {
    "ints that tile": lambda x: [x[0], x[1], x[2]],
    "a gap": lambda x: [x[0], x[2]],
    "overlapping slices": lambda x: [x[0:2], x[1:3]],
    "negative index and slice": lambda x: [x[-1], x[:2]],
    "strided slices": lambda x: [x[::2], x[1::2]],
    "a strided slice alone": lambda x: [x[::2]],
    "a row by its negative and positive index": lambda x: [x[-1], x[2], x[:2]],
    "one piece twice": lambda x: [x[1], x[1], x[0], x[2]],
    "inner axes": lambda x: [x[:, :2, 1:], x[:, 2:], x[:, :2, :1]],
    "the whole between pieces": lambda x: [x[0], x * 1.0, x[1:]],
}


@pytest.mark.parametrize("name", list(PIECES))
def test_gradients_of_any_pieces_sum_as_in_pytorch(name):
    """Pieces' gradients are added into one array in place: every cover of the tensor (gaps,
    overlaps, strides, a piece taken twice, the whole among them) must give PyTorch's gradient."""
    values = np.random.default_rng(1).standard_normal((3, 4, 5))

    def loss(x):
        return sum(((i + 2.0) * piece * piece).sum() for i, piece in enumerate(PIECES[name](x)))

    ours = tl.tensor(values, requires_grad=True)
    loss(ours).backward()
    theirs = torch.tensor(values, requires_grad=True)
    loss(theirs).backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12, atol=1e-12)
