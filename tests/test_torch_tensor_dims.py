"""PyTorch's `dim`/`keepdim` names: equal to NumPy's `axis`/`keepdims` aliases, PyTorch's defaults
where the two differ, and the property test (finite differences and torch) of every op and
argument that came with PyTorch's surface."""

from __future__ import annotations

import math

import numpy as np
import pytest
import strategies as s
import torch
from hypothesis import given
from hypothesis import strategies as st
from op_testing import DEVICES, Case, op_test

import tinyllm as tl
import tinyllm.nn.functional as F

REDUCTIONS = ["sum", "mean", "amax", "amin", "logsumexp", "var", "std"]


@st.composite
def dim_cases(draw, min_dims: int = 1, allow_tuple: bool = True):
    shape = draw(s.shapes(min_dims=min_dims))
    dim = draw(s.axes(len(shape), allow_none=allow_tuple, allow_tuple=allow_tuple))
    return draw(s.distinct_arrays(shape)), dim, draw(st.booleans())


@pytest.mark.parametrize("name", REDUCTIONS)
@given(drawn=dim_cases())
def test_reductions_take_dim_and_keepdim_as_aliases_of_axis_and_keepdims(name, drawn):
    values, dim, keepdim = drawn
    x = tl.tensor(values)
    by_torch_names = getattr(tl, name)(x, dim=dim, keepdim=keepdim).numpy()
    by_numpy_names = getattr(tl, name)(x, axis=dim, keepdims=keepdim).numpy()
    as_method = getattr(x, name)(dim=dim, keepdim=keepdim).numpy()
    torch_dim = tuple(range(values.ndim)) if dim is None else dim
    expected = getattr(torch, name)(torch.tensor(values), torch_dim, keepdim=keepdim)
    np.testing.assert_array_equal(by_torch_names, by_numpy_names)
    np.testing.assert_array_equal(by_torch_names, as_method)
    np.testing.assert_allclose(by_torch_names, expected.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["max", "min"])
@given(drawn=dim_cases(allow_tuple=False))
def test_max_and_min_along_a_dim_return_values_and_indices_like_torch(name, drawn):
    values, dim, keepdim = drawn
    ours = getattr(tl.tensor(values), name)(dim=dim, keepdim=keepdim)
    theirs = getattr(torch.tensor(values), name)(dim=dim, keepdim=keepdim)
    aliased = getattr(tl, name)(tl.tensor(values), axis=dim, keepdims=keepdim)
    np.testing.assert_array_equal(ours.values.numpy(), theirs.values.numpy())
    np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
    np.testing.assert_array_equal(aliased.indices.numpy(), theirs.indices.numpy())


@pytest.mark.parametrize("name", ["argmax", "argmin", "softmax", "log_softmax", "cumsum"])
@given(drawn=dim_cases(allow_tuple=False))
def test_ops_along_one_dim_take_dim_or_axis(name, drawn):
    values, dim, keepdim = drawn
    kwargs = {"keepdim": keepdim} if name.startswith("arg") else {}
    numpy_kwargs = {"keepdims": keepdim} if name.startswith("arg") else {}
    ours = getattr(tl, name)(tl.tensor(values), dim=dim, **kwargs).numpy()
    aliased = getattr(tl, name)(tl.tensor(values), axis=dim, **numpy_kwargs).numpy()
    theirs = getattr(torch, name)(torch.tensor(values, dtype=torch.float32), dim=dim, **kwargs).numpy()
    np.testing.assert_array_equal(ours, aliased)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


@given(drawn=dim_cases(allow_tuple=False))
def test_shape_ops_take_dim_or_axis(drawn):
    values, dim, _ = drawn
    x, tx = tl.tensor(values), torch.tensor(values)
    pairs = [
        (tl.cat([x, x], dim=dim), tl.cat([x, x], axis=dim), torch.cat([tx, tx], dim=dim)),
        (tl.stack([x, x], dim=dim), tl.stack([x, x], axis=dim), torch.stack([tx, tx], dim=dim)),
        (x.unsqueeze(dim=dim), x.unsqueeze(axis=dim), tx.unsqueeze(dim=dim)),
        (x.squeeze(dim=dim), x.squeeze(axis=dim), tx.squeeze(dim=dim)),
        (tl.cat(x.split(1, dim=dim), dim), tl.cat(x.split(1, axis=dim), dim), tx),
    ]
    for ours, aliased, theirs in pairs:
        assert ours.shape == tuple(theirs.shape)
        np.testing.assert_array_equal(ours.numpy(), aliased.numpy())
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


# -- PyTorch's defaults where NumPy's differ ----------------------------------------------------
def test_var_and_std_are_unbiased_by_default():
    x = tl.tensor([1.0, 2.0, 3.0, 6.0])
    assert x.var().item() == pytest.approx(14.0 / 3)  # sum of squares 14, divided by n - 1
    assert x.std().item() == pytest.approx(math.sqrt(14.0 / 3))
    assert x.var(unbiased=False).item() == pytest.approx(14.0 / 4)
    assert x.var(correction=0).item() == pytest.approx(14.0 / 4)
    with pytest.raises(tl.ArgumentError, match="unbiased or correction"):
        x.var(unbiased=True, correction=1)


def test_squeeze_of_a_dim_that_is_not_1_leaves_the_tensor_as_it_is():
    x = tl.zeros(2, 1, 3)
    assert x.squeeze(0).shape == (2, 1, 3)
    assert x.squeeze(1).shape == (2, 3)
    assert x.squeeze((0, 1)).shape == (2, 3)


def test_max_without_dim_is_a_0d_tensor_and_with_another_tensor_the_elementwise_maximum():
    x = tl.tensor([[1.0, 5.0], [3.0, 2.0]])
    assert x.max().shape == () and x.max().item() == 5.0
    np.testing.assert_array_equal(tl.max(x, tl.tensor(2.5)).numpy(), [[2.5, 5.0], [3.0, 2.5]])
    values, indices = x.max(dim=1)  # unpacks like torch's named tuple
    np.testing.assert_array_equal(indices.numpy(), [1, 0])


def test_max_along_a_dim_sends_the_gradient_to_the_picked_element_like_torch():
    values = [[2.0, 2.0, 1.0], [0.0, 3.0, 3.0]]
    x, tx = tl.tensor(values, requires_grad=True), torch.tensor(values, requires_grad=True)
    x.max(dim=1).values.sum().backward()
    tx.max(dim=1).values.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())


def test_0d_tensors_take_dim_0_or_minus_1_as_torch_does():
    x, tx = tl.tensor(2.5), torch.tensor(2.5)
    for dim in (0, -1):
        assert x.sum(dim).shape == () and x.softmax(dim).item() == 1.0
        assert x.max(dim).indices.item() == tx.max(dim).indices.item() == 0
        assert x.unsqueeze(dim).shape == (1,)
    with pytest.raises(tl.ShapeError, match="dim 1 is out of range"):
        x.sum(1)


def test_size_0_dims_reduce_as_torch():
    x = tl.zeros(0, 3)
    assert x.sum(0).shape == (3,) and x.sum().item() == 0.0
    assert np.isnan(x.mean(0).numpy()).all()
    assert tl.cat([x, tl.ones(2, 3)]).shape == (2, 3)
    with pytest.raises(tl.ShapeError, match="empty"):
        x.max(0)


# -- the op property suite for the ops and arguments that came with PyTorch's names -------------
@st.composite
def one_dim_cases(draw, array_strategy=s.arrays, min_dims=1, keepdim=True, **extra):
    shape = draw(s.shapes(min_dims=min_dims))
    kwargs = {"dim": draw(st.integers(-len(shape), len(shape) - 1))}
    if keepdim:
        kwargs["keepdim"] = draw(st.booleans())
    kwargs.update({name: draw(strategy) for name, strategy in extra.items()})
    return Case((draw(array_strategy(shape)),), kwargs)


@st.composite
def reduction_cases(draw, array_strategy=s.arrays, min_side=1, **extra):
    shape = draw(s.shapes(min_dims=1, min_side=min_side))
    kwargs = {"dim": draw(s.axes(len(shape))), "keepdim": draw(st.booleans())}
    kwargs.update({name: draw(strategy) for name, strategy in extra.items()})
    return Case((draw(array_strategy(shape)),), kwargs)


NO_TIES = ("transpose", "step")  # a broadcast view repeats elements: ties for max, zero variance for std

test_std = op_test(F.std, torch.std, reduction_cases(s.distinct_arrays, min_side=2), views=NO_TIES)
test_var_with_correction = op_test(
    tl.var,
    torch.var,
    reduction_cases(s.distinct_arrays, min_side=2, correction=st.sampled_from([0, 1])),
    views=NO_TIES,
)
test_amin = op_test(F.amin, torch.amin, reduction_cases(s.distinct_arrays), views=NO_TIES)
test_max_values_along_a_dim = op_test(
    lambda x, dim, keepdim: x.max(dim, keepdim).values,
    lambda x, dim, keepdim: x.max(dim, keepdim).values,
    one_dim_cases(s.distinct_arrays),
    views=NO_TIES,
)
test_min_values_along_a_dim = op_test(
    lambda x, dim, keepdim: tl.min(x, dim=dim, keepdim=keepdim)[0],
    lambda x, dim, keepdim: torch.min(x, dim=dim, keepdim=keepdim)[0],
    one_dim_cases(s.distinct_arrays),
    views=NO_TIES,
)
test_norm = op_test(
    tl.norm,
    lambda x, dim, keepdim, p: torch.linalg.vector_norm(x, 2 if p == "fro" else p, dim, keepdim),
    reduction_cases(lambda shape: s.arrays(shape, avoid=(0.0,)), p=st.sampled_from(["fro", 1, 2, 3])),
    atol=1e-4,
)
test_cumsum = op_test(tl.cumsum, torch.cumsum, one_dim_cases(keepdim=False))
test_sort_values = op_test(
    lambda x, dim, descending: x.sort(dim, descending).values,
    lambda x, dim, descending: x.sort(dim, descending).values,
    one_dim_cases(s.distinct_arrays, keepdim=False, descending=st.booleans()),
    views=NO_TIES,
)


@st.composite
def topk_cases(draw):
    shape = draw(s.shapes(min_dims=1))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    k = draw(st.integers(0, shape[dim]))
    return Case((draw(s.distinct_arrays(shape)),), {"k": k, "dim": dim, "largest": draw(st.booleans())})


test_topk_values = op_test(
    lambda x, **kw: tl.topk(x, **kw).values, lambda x, **kw: torch.topk(x, **kw).values, topk_cases(), views=NO_TIES
)


@st.composite
def gather_cases(draw):
    shape = draw(s.shapes(min_dims=1))
    dim = draw(st.integers(0, len(shape) - 1))
    index_shape = tuple(draw(st.integers(1, 3)) if i == dim else n for i, n in enumerate(shape))
    return Case((draw(s.arrays(shape)), draw(s.integer_arrays(index_shape, 0, shape[dim]))), {"dim": dim})


test_take_along_dim = op_test(tl.take_along_dim, torch.take_along_dim, gather_cases())
test_gather = op_test(
    lambda x, index, dim: tl.gather(x, dim, index), lambda x, index, dim: torch.gather(x, dim, index), gather_cases()
)
test_sin = op_test(tl.sin, torch.sin, st.builds(lambda a: Case((a,)), s.shapes().flatmap(s.arrays)))
test_cos = op_test(tl.cos, torch.cos, st.builds(lambda a: Case((a,)), s.shapes().flatmap(s.arrays)))
test_clone = op_test(tl.clone, torch.clone, st.builds(lambda a: Case((a,)), s.shapes().flatmap(s.arrays)))


@st.composite
def repeat_cases(draw):
    shape = draw(s.shapes(max_dims=2, max_side=3))
    sizes = tuple(draw(st.integers(1, 3)) for _ in range(len(shape) + draw(st.integers(0 if shape else 1, 1))))
    return Case((draw(s.arrays(shape)),), {"sizes": sizes})


test_repeat = op_test(lambda x, sizes: x.repeat(*sizes), lambda x, sizes: x.repeat(*sizes), repeat_cases())


@st.composite
def flatten_cases(draw):
    shape = draw(s.shapes(min_dims=1))
    start = draw(st.integers(0, len(shape) - 1))
    end = draw(st.integers(start, len(shape) - 1))
    return Case((draw(s.arrays(shape)),), {"start_dim": start, "end_dim": end})


test_flatten = op_test(tl.flatten, torch.flatten, flatten_cases())
test_unflatten = op_test(
    lambda x, dim, sizes: tl.unflatten(x, dim, sizes),
    lambda x, dim, sizes: torch.unflatten(x, dim, sizes),
    st.builds(lambda a: Case((a,), {"dim": 0, "sizes": (2, -1)}), s.arrays((4, 3))),
)


def joined(pieces, scale: float = 1.0):
    """Join pieces along dim 0 again, each scaled differently, so every piece's gradient is seen."""
    return [piece * (scale + i) for i, piece in enumerate(pieces)]


test_chunk = op_test(
    lambda x, chunks, dim: tl.cat(joined(tl.chunk(x, chunks, dim)), dim),
    lambda x, chunks, dim: torch.cat(joined(torch.chunk(x, chunks, dim)), dim),
    one_dim_cases(keepdim=False, chunks=st.integers(1, 4)),
)
test_unbind = op_test(
    lambda x, dim: tl.stack(joined(tl.unbind(x, dim)), dim),
    lambda x, dim: torch.stack(joined(torch.unbind(x, dim)), dim),
    one_dim_cases(keepdim=False),
)


@st.composite
def matrix_cases(draw, batch: bool):
    n, k, m = (draw(st.integers(1, 3)) for _ in range(3))
    lead = (draw(st.integers(1, 3)),) if batch else ()
    return Case((draw(s.arrays(lead + (n, k))), draw(s.arrays(lead + (k, m)))))


test_mm = op_test(tl.mm, torch.mm, matrix_cases(batch=False))
test_bmm = op_test(tl.bmm, torch.bmm, matrix_cases(batch=True))
test_add_with_alpha = op_test(
    lambda a, b, alpha: tl.add(a, b, alpha=alpha),
    lambda a, b, alpha: torch.add(a, b, alpha=alpha),
    st.builds(lambda a, b, alpha: Case((a, b), {"alpha": alpha}), s.arrays((2, 3)), s.arrays((3,)), s.floats()),
)


@st.composite
def clip_tensor_cases(draw):
    shape = draw(s.shapes(min_dims=1))
    return Case((draw(s.grid_arrays(shape)), draw(s.grid_arrays(shape[-1:], 0.05)), draw(s.grid_arrays((), 0.05))))


test_clip_with_tensor_bounds = op_test(
    lambda x, low, high: tl.clip(x, min=low, max=high + 5.0),
    lambda x, low, high: torch.clamp(x, min=low, max=high + 5.0),
    clip_tensor_cases(),
)
test_masked_fill_with_a_0d_tensor_value = op_test(
    lambda x, mask, value: x.masked_fill(mask, value),
    lambda x, mask, value: x.masked_fill(mask, value),
    s.shapes(min_dims=1).flatmap(
        lambda shape: st.builds(lambda *a: Case(a), s.arrays(shape), s.masks(shape), s.arrays(()))
    ),
)


@pytest.mark.parametrize("device", DEVICES)
def test_unknown_torch_arguments_raise_unsupported_error_naming_them(device):
    x = tl.ones(2, 3, device=device)
    with pytest.raises(tl.UnsupportedError, match="'dtype'"):
        x.sum(dim=0, dtype="float64")
    with pytest.raises(tl.UnsupportedError, match="'out'"):
        tl.cat([x, x], dim=0, out=x)
    with pytest.raises(tl.UnsupportedError, match="'stable'"):
        tl.softmax(x, dim=0, stable=True)
    with pytest.raises(tl.ArgumentError, match="both 'axis' and 'dim'"):
        x.mean(axis=0, dim=0)


def test_normalize_dim_accepts_numpy_integers_and_rejects_bools_and_floats():
    from tinyllm.ops.signature import normalize_dim, normalize_dims

    assert normalize_dim(np.int64(-1), 3) == 2 and normalize_dims(np.int32(1), 2) == (1,)
    assert normalize_dims((-1, 0), 3) == (0, 2) and normalize_dims(0, 0) == ()
    with pytest.raises(tl.ArgumentError, match="integer"):
        normalize_dim(True, 3)
    with pytest.raises(tl.ArgumentError, match="twice"):
        normalize_dims((0, -2), 2)
