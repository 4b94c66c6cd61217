"""Bad input gets a typed error from one small hierarchy, with a message naming what was given."""

from __future__ import annotations

import re

import numpy as np
import pytest
import strategies as s
from hypothesis import assume, given
from hypothesis import strategies as st
from op_testing import DEVICES

import tinyllm as tl
import tinyllm.errors as errors
import tinyllm.nn.functional as F


def test_every_error_derives_from_tinyllm_error_and_a_builtin():
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, Exception)]
    assert len(classes) >= 10
    for cls in classes:
        assert issubclass(cls, errors.TinyLLMError)
        # each also is the builtin a Python user would catch (ValueError, IndexError, ...)
        assert cls is errors.TinyLLMError or len(cls.__mro__) > 4
    assert issubclass(tl.ShapeError, ValueError) and issubclass(tl.OutOfRangeError, IndexError)
    assert issubclass(tl.DTypeError, TypeError)


def names_both(message: str, shape_a: tuple, shape_b: tuple) -> bool:
    return str(tuple(shape_a)) in message and str(tuple(shape_b)) in message


@pytest.mark.parametrize("device", DEVICES)
@given(n=st.integers(1, 4), k=st.integers(1, 4), other_k=st.integers(1, 4), batch=s.shapes(max_dims=2))
def test_matmul_shape_mismatch_names_both_shapes(device, n, k, other_k, batch):
    assume(k != other_k)
    a, b = tl.zeros(*batch, n, k, device=device), tl.zeros(other_k, 3, device=device)
    with pytest.raises(tl.ShapeError) as info:
        a @ b
    assert names_both(str(info.value), a.shape, b.shape)


@pytest.mark.parametrize("device", DEVICES)
def test_matmul_batch_mismatch_and_1d_mismatch_name_both_shapes(device):
    for shape_a, shape_b in [((2, 3, 4), (5, 4, 2)), ((3,), (4,)), ((3,), (4, 2)), ((2, 3), (4,))]:
        with pytest.raises(tl.ShapeError) as info:
            tl.zeros(*shape_a, device=device) @ tl.zeros(*shape_b, device=device)
        message = str(info.value)
        assert str(shape_a[-1]) in message and str(shape_b[0 if len(shape_b) == 1 else -2]) in message


@st.composite
def non_broadcastable_shapes(draw):
    shape_a, shape_b = draw(st.tuples(s.shapes(min_dims=1), s.shapes(min_dims=1)))
    axis = draw(st.integers(1, min(len(shape_a), len(shape_b))))
    shape_a = list(shape_a)
    shape_b = list(shape_b)
    shape_a[-axis] = draw(st.integers(2, 4))
    shape_b[-axis] = draw(st.integers(2, 4).filter(lambda n: n != shape_a[-axis]))
    return tuple(shape_a), tuple(shape_b)


@pytest.mark.parametrize("op", [F.add, F.sub, F.mul, F.div, F.maximum, F.minimum, F.pow])
@given(shapes=non_broadcastable_shapes())
def test_broadcast_mismatch_names_both_shapes(op, shapes):
    shape_a, shape_b = shapes
    with pytest.raises(tl.ShapeError) as info:
        op(tl.ones(*shape_a), tl.ones(*shape_b))
    assert names_both(str(info.value), shape_a, shape_b)


def test_where_and_masked_fill_with_a_misfit_mask_name_both_shapes():
    with pytest.raises(tl.ShapeError, match=re.escape("(3,)")):
        tl.where(tl.ones(3) > 0, tl.ones(2), tl.ones(2))
    # the message names the condition's shape first, then the operand's, in the order of the call
    with pytest.raises(tl.ShapeError, match=re.escape("shapes (3,) and (2,) cannot be broadcast")):
        tl.where(tl.ones(3) > 0, tl.ones(1), tl.ones(2))
    with pytest.raises(tl.ShapeError, match=re.escape("(2, 4)")):
        F.masked_fill(tl.ones(2, 4), tl.ones(3) > 0, 0.0)


@pytest.mark.parametrize(
    "op",
    [
        lambda a, b: a + b,
        lambda a, b: a * b,
        lambda a, b: a @ b,
        lambda a, b: tl.where(a > 0, a, b),
        lambda a, b: tl.where(b > 0, a, a),
        lambda a, b: F.masked_fill(a, b > 0, 0.0),
        lambda a, b: a[tl.tensor([0], device=b.device)],
        lambda a, b: tl.cat([a, b]),
        lambda a, b: F.layer_norm(a, (2,), b[0], b[0]),
        lambda a, b: F.embedding(tl.tensor([0, 1], device=a.device), b),
    ],
)
def test_mixing_devices_in_one_op_raises_device_error(op):
    on_cpu = tl.ones(2, 2, device="cpu")
    on_strict = tl.ones(2, 2, device="strict")
    with pytest.raises(tl.DeviceError, match="'cpu'.*'strict'|'strict'.*'cpu'"):
        op(on_cpu, on_strict)


def test_grad_on_an_integer_tensor_raises_dtype_error():
    with pytest.raises(tl.DTypeError, match="int64"):
        tl.tensor([1, 2, 3], requires_grad=True)


def test_tensor_of_strings_raises_dtype_error():
    with pytest.raises(tl.DTypeError, match="<U"):
        tl.tensor(["a", "b"])


@pytest.mark.parametrize("device", DEVICES)
def test_backward_on_a_non_scalar_without_gradient_raises_graph_error(device):
    y = tl.ones(2, 3, device=device, requires_grad=True) * 2.0
    with pytest.raises(tl.GraphError, match=re.escape("(2, 3)")):
        y.backward()
    with pytest.raises(tl.ShapeError, match=re.escape("(3,)")):
        y.backward(tl.ones(3, device=device))


def test_backward_on_a_tensor_outside_any_graph_raises_graph_error():
    with pytest.raises(tl.GraphError, match="does not require grad"):
        tl.ones(1).sum().backward()


def test_in_place_write_into_a_tensor_that_requires_grad_raises_graph_error():
    x = tl.ones(3, requires_grad=True)
    with pytest.raises(tl.GraphError):
        x[0] = 2.0


@pytest.mark.parametrize("device", DEVICES)
def test_embedding_id_out_of_range_raises_out_of_range_error(device):
    weight = tl.ones(5, 2, device=device)
    for bad in (5, -1):
        with pytest.raises(tl.OutOfRangeError, match=rf"{bad}.*5"):
            F.embedding(tl.tensor([0, bad, 1], device=device), weight)
    with pytest.raises(tl.DTypeError, match="float32"):
        F.embedding(tl.tensor([0.0], device=device), weight)


def test_cross_entropy_rejects_bad_targets():
    logits = tl.zeros(2, 3)
    with pytest.raises(tl.OutOfRangeError, match=r"\[0, 3\)"):
        F.cross_entropy(logits, tl.tensor([0, 3]))
    with pytest.raises(tl.ShapeError, match=re.escape("(2, 3)")):
        F.cross_entropy(logits, tl.tensor([0, 1, 2]))
    with pytest.raises(tl.DTypeError):
        F.cross_entropy(logits, tl.tensor([0.0, 1.0]))


def test_shape_ops_name_the_shapes_they_cannot_use():
    x = tl.zeros(2, 3)
    cases = [
        (lambda: x.reshape(4, 2), "(2, 3)"),
        (lambda: x.expand(4, 3, 2), "(2, 3)"),
        (lambda: x.permute(0, 0), "(0, 0)"),
        (lambda: tl.cat([x, tl.zeros(3, 3)], axis=1), "(3, 3)"),
        (lambda: tl.stack([x, tl.zeros(3, 2)]), "(3, 2)"),
        (lambda: x.split([1, 1], axis=1), "[1, 1]"),
        (lambda: x.sum(axis=2), "dim 2"),
        (lambda: F.softmax(x, axis=-3), "dim -3"),
        (lambda: F.layer_norm(x, (2,), tl.ones(2), tl.zeros(2)), "(2,)"),
    ]
    for make, expected in cases:
        with pytest.raises(tl.ShapeError, match=re.escape(expected)):
            make()


def test_unknown_gelu_form_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match="'none', 'tanh'"):
        F.gelu(tl.ones(2), approximate="fast")


def test_errors_carry_the_given_values_not_just_a_type():
    with pytest.raises(tl.OutOfRangeError, match="7"):
        F.embedding(tl.tensor([7]), tl.ones(3, 2))
    with pytest.raises(tl.ShapeError, match="len"):
        len(tl.tensor(1.0))
    with pytest.raises(tl.ShapeError, match=re.escape("(2,)")):
        tl.ones(2).item()
    assert isinstance(np.float64(tl.ones(1).item()), np.float64)
