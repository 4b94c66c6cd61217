"""Shape ops: reshape, transpose, permute, expand, squeeze, unsqueeze, concatenate, stack, split,
indexing (basic and integer arrays) and tril/triu."""

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
def reshape_cases(draw):
    shape = draw(s.shapes())
    return Case((draw(s.arrays(shape)),), {"shape": draw(s.reshape_targets(shape))})


test_reshape = op_test(F.reshape, torch.reshape, reshape_cases())


@st.composite
def transpose_cases(draw):
    shape = draw(s.shapes(min_dims=1))
    axis = st.integers(-len(shape), len(shape) - 1)
    return Case((draw(s.arrays(shape)),), {"dim0": draw(axis), "dim1": draw(axis)})


test_transpose = op_test(F.transpose, torch.transpose, transpose_cases())


@st.composite
def permute_cases(draw):
    shape = draw(s.shapes(min_dims=1))
    return Case((draw(s.arrays(shape)),), {"dims": tuple(draw(st.permutations(range(len(shape)))))})


test_permute = op_test(F.permute, torch.permute, permute_cases())


@st.composite
def expand_cases(draw):
    shape, target = draw(s.broadcastable_shapes(2))
    # the target is the broadcast of both shapes, so `shape` can always be expanded to it
    target = tuple(np.broadcast_shapes(shape, target))
    return Case((draw(s.arrays(shape)),), {"size": target})


test_expand = op_test(F.expand, lambda x, size: x.expand(size), expand_cases())


@st.composite
def squeeze_cases(draw):
    shape = draw(s.shapes(min_side=1, max_side=2))
    ones = [i for i, n in enumerate(shape) if n == 1]
    axis = draw(st.none() | st.sampled_from(ones)) if ones else None
    return Case((draw(s.arrays(shape)),), {"axis": axis})


test_squeeze = op_test(F.squeeze, lambda x, axis: x.squeeze() if axis is None else x.squeeze(axis), squeeze_cases())


@st.composite
def unsqueeze_cases(draw):
    shape = draw(s.shapes())
    return Case((draw(s.arrays(shape)),), {"axis": draw(st.integers(-len(shape) - 1, len(shape)))})


test_unsqueeze = op_test(F.unsqueeze, torch.unsqueeze, unsqueeze_cases())


@st.composite
def concatenate_cases(draw, same_shape=False):
    shape = draw(s.shapes(min_dims=1))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    arrays = []
    for _ in range(draw(st.integers(1, 3))):
        piece = list(shape)
        if not same_shape:
            piece[axis] = draw(st.integers(1, 3))
        arrays.append(draw(s.arrays(tuple(piece))))
    return Case(tuple(arrays), {"axis": axis})


test_concatenate = op_test(
    lambda *xs, axis: F.concatenate(xs, axis), lambda *xs, axis: torch.cat(xs, axis), concatenate_cases()
)
test_stack = op_test(
    lambda *xs, axis: F.stack(xs, axis), lambda *xs, axis: torch.stack(xs, axis), concatenate_cases(same_shape=True)
)


@st.composite
def split_cases(draw):
    shape = draw(s.shapes(min_dims=1))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    length = shape[axis]
    if draw(st.booleans()):
        sections = draw(st.integers(1, length))
    else:
        cuts = sorted(draw(st.lists(st.integers(0, length), max_size=3)))
        sections = [b - a for a, b in zip([0] + cuts, cuts + [length])]
    return Case((draw(s.arrays(shape)),), {"sections": sections, "axis": axis})


def weighted_pieces(pieces, cat):
    """Join split's pieces again, each scaled differently, so every piece's gradient is seen."""
    return cat([piece * float(i + 1) for i, piece in enumerate(pieces)])


test_split = op_test(
    lambda x, sections, axis: weighted_pieces(F.split(x, sections, axis), lambda ps: F.cat(ps, axis)),
    lambda x, sections, axis: weighted_pieces(torch.split(x, sections, axis), lambda ps: torch.cat(ps, axis)),
    split_cases(),
)


@st.composite
def basic_index_cases(draw):
    shape = draw(s.shapes(min_dims=1))
    return Case((draw(s.arrays(shape)),), {"index": draw(s.basic_indices(shape))})


test_getitem_basic = op_test(lambda x, index: x[index], lambda x, index: x[index], basic_index_cases())


@st.composite
def row_index_cases(draw):
    """x[ids]: one integer array (any shape, repeats and negatives) picking along the first axis."""
    shape = draw(s.shapes(min_dims=1))
    ids = draw(s.integer_arrays(draw(s.shapes(max_dims=2)), -shape[0], shape[0]))
    return Case((draw(s.arrays(shape)), ids))


test_getitem_integer_array = op_test(lambda x, ids: x[ids], lambda x, ids: x[ids], row_index_cases())


@st.composite
def point_index_cases(draw):
    """x[i, j]: one integer array per axis, broadcast together, picking single elements."""
    shape = draw(s.shapes(min_dims=2, max_dims=2))
    index_shapes = draw(s.broadcastable_shapes(2, max_dims=2))
    rows = draw(s.integer_arrays(index_shapes[0], 0, shape[0]))
    cols = draw(s.integer_arrays(index_shapes[1], 0, shape[1]))
    return Case((draw(s.arrays(shape)), rows, cols))


test_getitem_integer_arrays_per_axis = op_test(
    lambda x, rows, cols: x[rows, cols], lambda x, rows, cols: x[rows, cols], point_index_cases()
)


@st.composite
def mask_index_cases(draw):
    """x[mask] with a bool mask of x's shape: the selected elements, flattened."""
    shape = draw(s.shapes(min_dims=1))
    return Case((draw(s.arrays(shape)), draw(s.masks(shape))))


test_getitem_bool_mask = op_test(lambda x, mask: x[mask], lambda x, mask: x[mask], mask_index_cases())


@st.composite
def triangle_cases(draw):
    shape = draw(s.shapes(min_dims=2))
    return Case((draw(s.arrays(shape)),), {"diagonal": draw(st.integers(-2, 2))})


test_tril = op_test(tl.tril, torch.tril, triangle_cases())
test_triu = op_test(tl.triu, torch.triu, triangle_cases())


# -- methods and edge cases ----------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_tensor_methods_take_shapes_as_varargs_or_tuples(device):
    x = tl.tensor(np.arange(6.0).reshape(2, 3), device=device)
    assert x.reshape(3, 2).shape == x.reshape((3, 2)).shape == x.view(-1, 2).shape == (3, 2)
    assert x.permute(1, 0).shape == x.permute((1, 0)).shape == x.T.shape == (3, 2)
    assert x[None].expand(4, 2, 3).shape == x[None].expand((4, -1, -1)).shape == (4, 2, 3)
    assert x.flatten().shape == (6,) and x.unsqueeze(1).squeeze().shape == (2, 3)


@pytest.mark.parametrize("device", DEVICES)
def test_split_along_the_first_axis_of_a_matrix(device):
    x = tl.tensor(np.arange(8.0).reshape(4, 2), device=device, requires_grad=True)
    first, second = x.split(2, axis=0)
    (first * 2.0 + second).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[2, 2], [2, 2], [1, 1], [1, 1]])


@pytest.mark.parametrize("device", DEVICES)
def test_iterating_a_tensor_yields_its_rows_and_stops(device):
    x = tl.tensor(np.arange(6.0).reshape(3, 2), device=device)
    assert [row.numpy().tolist() for row in x] == [[0, 1], [2, 3], [4, 5]]


@pytest.mark.parametrize("device", DEVICES)
def test_an_index_past_the_end_raises_out_of_range_error(device):
    x = tl.zeros(3, 2, device=device)
    with pytest.raises(tl.OutOfRangeError, match=r"\(3, 2\)"):
        x[3]
    with pytest.raises(tl.OutOfRangeError):
        x[tl.tensor([0, 5], device=device)]


@pytest.mark.parametrize("device", DEVICES)
def test_numpy_integers_index_like_python_integers(device):
    x = tl.tensor(np.arange(6.0).reshape(3, 2), device=device)
    for i in np.arange(3):
        assert x[i].shape == (2,) and x[i].numpy().tolist() == x[int(i)].numpy().tolist()
    assert x[np.int64(2), np.int32(1)].item() == 5.0


@pytest.mark.parametrize("device", DEVICES)
def test_repeated_indices_accumulate_their_gradients(device):
    x = tl.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    x[tl.tensor([0, 0, 2, 0], device=device)].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 1.0])


@pytest.mark.parametrize("device", DEVICES)
def test_setitem_writes_into_tensors_outside_a_graph_only(device):
    x = tl.zeros(2, 3, device=device)
    x[0] = 1.0
    x[1, 1:] = tl.tensor([2.0, 3.0], device=device)
    np.testing.assert_array_equal(x.numpy(), [[1, 1, 1], [0, 2, 3]])
    with pytest.raises(tl.GraphError):
        tl.zeros(2, device=device, requires_grad=True)[0] = 1.0


@given(shape=s.shapes(min_dims=1))
def test_reshape_rejects_a_wrong_size_and_names_both_shapes(shape):
    x = tl.zeros(*shape)
    target = (x.numel() + 1,)
    with pytest.raises(tl.ShapeError, match=rf"{x.numel() + 1}"):
        x.reshape(target)
