"""The backend layer: device names, moving data, dtypes, and the gaps of the array API it fills."""

from __future__ import annotations

import numpy as np
import pytest
import strategies as s
from hypothesis import given
from hypothesis import strategies as st
from op_testing import DEVICES

import tinyllm as tl
from tinyllm.backend import RANDOM, backend_of, get_backend


@pytest.mark.parametrize("device", DEVICES)
@given(array=s.arrays(s.shapes()))
def test_host_round_trip_keeps_shape_dtype_and_values(device, array):
    backend = get_backend(device)
    on_device = backend.from_host(array)
    assert backend_of(on_device) is backend
    assert tuple(on_device.shape) == array.shape
    np.testing.assert_array_equal(backend.to_host(on_device), array)


@pytest.mark.parametrize("device", DEVICES)
def test_scalars_become_0d_tensors(device):
    for data in (2.5, np.float64(2.5), np.array(2.5), 3):
        t = tl.tensor(data, device=device)
        assert t.shape == () and t.ndim == 0 and t.item() == pytest.approx(float(data))


@pytest.mark.parametrize("device", DEVICES)
def test_dtype_names_round_trip(device):
    backend = get_backend(device)
    for name in ("float32", "float64", "int32", "int64", "bool"):
        assert backend.dtype_name(backend.asarray([1, 0], dtype=name)) == name
        assert tl.tensor([1, 0], dtype=name, device=device).dtype == name


@pytest.mark.parametrize("device", DEVICES)
def test_scatter_add_sums_repeated_indices(device):
    backend = get_backend(device)
    target = backend.asarray(np.zeros((3, 2)), dtype="float64")
    index = backend.asarray([0, 2, 0, 0])
    values = backend.asarray(np.ones((4, 2)), dtype="float64")
    result = backend.to_host(backend.scatter_add(target, index, values))
    np.testing.assert_array_equal(result, [[3, 3], [0, 0], [1, 1]])


@given(
    rows=st.integers(1, 6),
    trailing=st.sampled_from([(), (3,), (2, 2)]),
    picks=st.lists(st.integers(-6, 5), min_size=0, max_size=12),
    start=st.floats(-2, 2),
    dtype=st.sampled_from(["int64", "int32", "uint8"]),
)
def test_scatter_add_of_row_indices_matches_a_loop(rows, trailing, picks, start, dtype):
    """The sorted-runs path of the NumPy backend (1-d integer indices) against one addition per index."""
    picks = [p % rows if dtype == "uint8" else max(p, -rows) % (2 * rows) - rows for p in picks]
    index = np.array(picks, dtype=dtype)
    rng = np.random.default_rng(len(picks))
    values = rng.standard_normal(index.shape + trailing)
    target = np.full((rows, *trailing), start)
    expected = target.copy()
    for i, row in enumerate(picks):
        expected[row] += values[i]
    result = get_backend("cpu").scatter_add(target, index, values)
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-12)


def test_scatter_add_of_an_index_past_the_end_raises_index_error():
    with pytest.raises(IndexError):
        get_backend("cpu").scatter_add(np.zeros((3, 2)), np.array([0, 3]), np.ones((2, 2)))


@pytest.mark.parametrize("device", DEVICES)
def test_erf_matches_math_erf(device):
    import math

    backend = get_backend(device)
    xs = np.linspace(-3, 3, 13)
    out = backend.to_host(backend.erf(backend.asarray(xs, dtype="float64")))
    np.testing.assert_allclose(out, [math.erf(x) for x in xs], rtol=1e-14)


def test_tensor_to_moves_between_devices_and_keeps_values():
    x = tl.tensor([[1.0, 2.0]], requires_grad=True)
    on_strict = x.to("strict")
    assert on_strict.device == "strict" and on_strict.requires_grad and on_strict.is_leaf
    back = on_strict.to("cpu")
    assert back.device == "cpu" and back.numpy().tolist() == [[1.0, 2.0]]
    assert x.to("cpu") is x


def test_default_device_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("TINYLLM_DEVICE", "strict")
    assert tl.default_device() == "strict"
    assert tl.tensor([1.0]).device == "strict"
    assert tl.zeros(2).device == "strict"
    monkeypatch.delenv("TINYLLM_DEVICE")
    assert tl.default_device() == "cpu" and tl.tensor([1.0]).device == "cpu"


def test_unknown_device_raises_device_error():
    with pytest.raises(tl.DeviceError, match="unknown device 'tpu'"):
        tl.tensor([1.0], device="tpu")


def test_cuda_without_a_gpu_raises_device_error():
    if tl.cuda_is_available():
        assert tl.tensor([1.0], device="cuda").device == "cuda"
    else:
        with pytest.raises(tl.DeviceError, match="cuda"):
            tl.tensor([1.0], device="cuda")


def test_random_state_round_trips_through_json():
    import json

    tl.manual_seed(123)
    state = json.loads(json.dumps(RANDOM.get_state()))
    first = tl.randn(3).numpy()
    RANDOM.set_state(state)
    np.testing.assert_array_equal(tl.randn(3).numpy(), first)
    tl.manual_seed(123)
    np.testing.assert_array_equal(tl.randn(3).numpy(), first)


@pytest.mark.parametrize("device", DEVICES)
def test_same_seed_gives_same_numbers_on_every_device(device):
    tl.manual_seed(7)
    expected = tl.randn(2, 3).numpy()
    tl.manual_seed(7)
    np.testing.assert_array_equal(tl.randn(2, 3, device=device).numpy(), expected)
