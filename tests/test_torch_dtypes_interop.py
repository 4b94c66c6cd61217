"""dtypes and devices as objects, the factories' dtype=/device=, conversions, NumPy/DLPack
interop, and one regression test per trap that used to give a silently different result."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from op_testing import DEVICES

import tinyllm as tl
import tinyllm.nn.functional as F


# -- dtypes and devices ---------------------------------------------------------------------------
def test_dtypes_are_objects_equal_to_their_names():
    x = tl.ones(2)
    assert x.dtype is tl.float32 and x.dtype == "float32" and repr(x.dtype) == "tinyllm.float32"
    assert tl.float is tl.float32 and tl.long is tl.int64 and tl.half is tl.float16 and tl.double is tl.float64
    assert tl.bool == "bool" and tl.int == "int32"
    assert tl.float32.is_floating_point and not tl.int64.is_floating_point
    assert x.element_size() == 4 and x.half().element_size() == 2


def test_devices_are_objects_equal_to_their_names():
    x = tl.ones(2)
    assert x.device == "cpu" and x.device.type == "cpu" and x.device.index is None
    assert tl.device("cuda", 0) == "cuda:0" and tl.device("cuda:1").index == 1
    assert x.to(tl.device("cpu")) is x


@pytest.mark.parametrize("device", DEVICES)
def test_every_factory_takes_dtype_and_device(device):
    made = {
        "zeros": tl.zeros(2, 3, dtype=tl.float64, device=device),
        "ones": tl.ones((2, 3), dtype=tl.float64, device=device),
        "empty": tl.empty(2, 3, dtype=tl.float64, device=device),
        "full": tl.full((2, 3), 1.5, dtype=tl.float64, device=device),
        "eye": tl.eye(2, 3, dtype=tl.float64, device=device),
        "arange": tl.arange(6, dtype=tl.float64, device=device),
        "linspace": tl.linspace(0, 1, 6, dtype=tl.float64, device=device),
        "rand": tl.rand(2, 3, dtype=tl.float64, device=device),
        "randn": tl.randn(2, 3, dtype=tl.float64, device=device),
        "tensor": tl.tensor([1, 2], dtype=tl.float64, device=device),
        "as_tensor": tl.as_tensor([1, 2], dtype=tl.float64, device=device),
        "zeros_like": tl.zeros_like(tl.ones(2), dtype=tl.float64, device=device),
        "ones_like": tl.ones_like(tl.ones(2), dtype=tl.float64, device=device),
        "full_like": tl.full_like(tl.ones(2), 3.0, dtype=tl.float64, device=device),
        "rand_like": tl.rand_like(tl.ones(2), dtype=tl.float64, device=device),
        "randn_like": tl.randn_like(tl.ones(2), dtype=tl.float64, device=device),
    }
    for name, t in made.items():
        assert t.dtype == tl.float64 and t.device == device, name
    integers = [
        tl.randint(0, 5, (3,), device=device),
        tl.randperm(4, device=device),
        tl.arange(3, device=device),
        tl.full((2,), 7, device=device),
    ]
    assert all(t.dtype == tl.int64 and t.device == device for t in integers)
    assert sorted(tl.randperm(5).tolist()) == [0, 1, 2, 3, 4]


def test_full_takes_its_dtype_from_the_fill_value_as_torch():
    for value in (True, 3, 2.5):
        assert tl.full((2,), value).dtype == str(torch.full((2,), value).dtype).removeprefix("torch.")


def test_conversions_to_dtypes():
    x = tl.tensor([1.7, -2.2], requires_grad=True)
    assert x.long().tolist() == [1, -2] and x.int().dtype == tl.int32
    assert x.bool().dtype == tl.bool and x.double().dtype == tl.float64 and x.half().dtype == tl.float16
    assert x.to(tl.float64).dtype == tl.float64 and x.to("cpu", tl.float16).dtype == tl.float16
    assert x.to(tl.zeros(1, dtype=tl.float64)).dtype == tl.float64
    assert x.type_as(tl.zeros(1, dtype=tl.int64)).dtype == tl.int64
    x.double().sum().backward()  # float casts stay in the graph
    assert x.grad.dtype == tl.float32 and x.grad.tolist() == [1.0, 1.0]
    assert x.to(tl.float32) is x and x.to(tl.float32, copy=True) is not x


def test_float16_is_a_storage_dtype_that_stays_float16():
    x = tl.tensor([1.0, 2.0], dtype=tl.float16)
    assert (x * 2.0).dtype == tl.float16
    assert (x * tl.tensor(2.0)).dtype == tl.float16  # a 0-d float32 tensor does not widen it, as torch
    assert (x * tl.tensor(2.0, dtype=tl.float64)).dtype == tl.float16
    assert x.mean().dtype == tl.float16 and x.softmax(0).dtype == tl.float16
    assert (
        tl.tensor(np.ones(2, np.float16)).dtype == tl.float16 and tl.zeros(2, dtype=torch.float16).dtype == tl.float16
    )


def test_integer_tensors_meet_python_floats_and_true_division_in_float32_as_torch():
    ids = tl.tensor([1, 2])
    for ours, theirs in [
        (ids + 1.5, torch.tensor([1, 2]) + 1.5),
        (ids * 0.5, torch.tensor([1, 2]) * 0.5),
        (ids / 2, torch.tensor([1, 2]) / 2),
        (1.5 - ids, 1.5 - torch.tensor([1, 2])),
        (ids + 1, torch.tensor([1, 2]) + 1),
    ]:
        assert ours.dtype == str(theirs.dtype).removeprefix("torch.")
        np.testing.assert_allclose(ours.numpy(), theirs.numpy())


# -- interop ----------------------------------------------------------------------------------------
def test_numpy_asarray_gives_the_numbers():
    x = tl.tensor([[1.0, 2.0]], requires_grad=True)
    host = np.asarray(x)
    assert host.dtype == np.float32 and host.tolist() == [[1.0, 2.0]]
    assert np.asarray(x, dtype=np.float64).dtype == np.float64
    assert tl.tensor([tl.tensor(1.0), tl.tensor(2.0)]).tolist() == [1.0, 2.0]


def test_dlpack_shares_memory_with_numpy_and_torch():
    x = tl.zeros(3)
    theirs = torch.from_dlpack(x)
    theirs += 1.0
    assert x.tolist() == [1.0, 1.0, 1.0]
    ours = tl.from_dlpack(torch.arange(4.0))
    assert ours.dtype == tl.float32 and ours.tolist() == [0.0, 1.0, 2.0, 3.0]
    from_numpy = tl.from_dlpack(np.arange(3))
    assert from_numpy.dtype == tl.int64 and np.from_dlpack(from_numpy).tolist() == [0, 1, 2]
    with pytest.raises(tl.DTypeError, match="__dlpack__"):
        tl.from_dlpack([1, 2])


# -- each silent trap, now right or a typed error naming the argument -------------------------
def test_clip_with_a_tensor_bound_is_a_tensor_with_the_bounds_gradient():
    x = tl.tensor([-2.0, 0.5, 3.0], requires_grad=True)
    low = tl.tensor([-1.0, -1.0, -1.0], requires_grad=True)
    out = tl.clip(x, min=low, max=2.0)
    assert isinstance(out, tl.Tensor) and out.dtype == tl.float32
    np.testing.assert_allclose(out.numpy(), [-1.0, 0.5, 2.0])
    out.sum().backward()
    np.testing.assert_allclose(low.grad.numpy(), [1.0, 0.0, 0.0])
    with pytest.raises(tl.ArgumentError, match="min"):
        tl.clip(x, min="0")


def test_masked_fill_with_a_0d_tensor_value_keeps_its_gradient():
    x = tl.zeros(2, 2, requires_grad=True)
    value = tl.tensor(3.0, requires_grad=True)
    mask = tl.tensor([[True, False], [True, True]])
    x.masked_fill(mask, value).sum().backward()
    assert value.grad.item() == 3.0
    with pytest.raises(tl.ShapeError, match="0-d"):
        x.masked_fill(mask, tl.ones(2))


def test_arange_of_float_arguments_is_float32():
    steps = tl.arange(0, 1, 0.25)
    assert steps.dtype == tl.float32 and steps.tolist() == [0.0, 0.25, 0.5, 0.75]
    assert tl.arange(5).dtype == tl.int64 and tl.arange(1, 2.5).tolist() == [1.0, 2.0]
    with pytest.raises(tl.ArgumentError, match="step"):
        tl.arange(0, 1, 0)


def test_var_divides_by_n_minus_1():
    values = [2.0, 4.0, 9.0]
    assert tl.tensor(values).var().item() == pytest.approx(torch.tensor(values).var().item())


def test_a_ragged_list_is_a_shape_error():
    with pytest.raises(tl.ShapeError, match="rectangular"):
        tl.tensor([[1.0, 2.0], [3.0]])


def test_dims_out_of_range_are_shape_errors_naming_the_dim():
    x = tl.zeros(2, 3)
    with pytest.raises(tl.ShapeError, match="transpose: dim 5"):
        x.transpose(0, 5)
    with pytest.raises(tl.ShapeError, match="cat: dim 5"):
        tl.cat([x, x], dim=5)
    with pytest.raises(tl.ShapeError, match="stack: dim 4"):
        tl.stack([x, x], dim=4)
    with pytest.raises(tl.ArgumentError, match="dim must be an integer"):
        x.softmax(dim=1.0)


def test_mean_over_an_empty_dim_is_nan_as_torch():
    empty = tl.zeros(0, 2)
    assert np.isnan(empty.mean(dim=0).numpy()).all() and np.isnan(empty.mean().item())
    assert math.isnan(torch.zeros(0, 2).mean().item())


def test_functional_softmax_takes_dim():
    x = tl.tensor([[1.0, 2.0], [3.0, 5.0]])
    np.testing.assert_allclose(F.softmax(x, dim=0).numpy(), torch.softmax(torch.tensor(x.numpy()), dim=0).numpy())
