"""The Numba GELU and LayerNorm kernels against their reference, kernels/norm_act_reference.py,
on the calling thread and split over Numba's threads (as in a process tuned for training)."""

import contextlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyllm as tl
import tinyllm.nn.functional as F
from tinyllm.kernels import choose, norm_act_cpu, norm_act_reference, use

shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=70)


def values_and_grads(fn, arrays, kernel: str):
    """Return fn's output and the gradients of sum(out * cotangent) for each input, as NumPy."""
    with use(norm_act=kernel):
        tensors = [tl.tensor(a, requires_grad=True) for a in arrays]
        out = fn(*tensors)
        cotangent = np.cos(np.arange(out.numel(), dtype=np.float32)).reshape(out.shape)
        out.backward(tl.tensor(cotangent))
        return [out.numpy()] + [t.grad.numpy() for t in tensors]


def assert_kernel_matches_reference(fn, arrays, atol: float) -> None:
    fused = values_and_grads(fn, arrays, "auto")
    reference = values_and_grads(fn, arrays, "reference")
    for got, want in zip(fused, reference):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=atol)


SPLIT = pytest.mark.parametrize("split", [False, True], ids=["calling thread", "split over threads"])


@contextlib.contextmanager
def threads(split: bool):
    """Run the kernels on the calling thread, or with their work split over Numba's threads at
    every size (as from PARALLEL_WORK up in the one pool of a tuned process)."""
    saved = norm_act_cpu._parallel
    norm_act_cpu._parallel = (lambda size: True) if split else (lambda size: False)
    try:
        yield
    finally:
        norm_act_cpu._parallel = saved


@SPLIT
@given(shape=shapes, data=st.data())
def test_gelu_kernel_matches_the_reference(split, shape, data):
    x = data.draw(hnp.arrays(np.float32, shape, elements=st.floats(-6, 6, width=32)))
    with threads(split):
        assert_kernel_matches_reference(F.gelu, [x], atol=2e-6)


@SPLIT
@given(shape=shapes, data=st.data())
def test_layer_norm_kernel_matches_the_reference(split, shape, data):
    width = shape[-1]
    floats = st.floats(-3, 3, width=32)
    x = data.draw(hnp.arrays(np.float32, shape, elements=floats))
    x = x + np.linspace(0, 1, width, dtype=np.float32)  # no row of equal values (zero variance)
    weight = data.draw(hnp.arrays(np.float32, (width,), elements=floats))
    bias = data.draw(hnp.arrays(np.float32, (width,), elements=floats))
    with threads(split):
        assert_kernel_matches_reference(
            lambda a, w, b: F.layer_norm(a, w.shape, w, b, 1e-5), [x, weight, bias], atol=2e-4
        )


def test_the_kernels_run_only_where_they_apply():
    assert choose("norm_act", np.zeros((2, 3), np.float32)) is norm_act_cpu
    assert choose("norm_act", np.zeros((3, 2), np.float32).T) is norm_act_cpu  # strided views too
    assert choose("norm_act", np.zeros((2, 3), np.float64)) is norm_act_reference  # float64 keeps the exact erf
    mixed = (np.zeros((2, 3), np.float32), np.zeros(3, np.float64), np.zeros(3, np.float32))
    assert choose("norm_act", *mixed) is norm_act_reference
    with use(norm_act="reference"):
        assert choose("norm_act", np.zeros((2, 3), np.float32)) is norm_act_reference


@SPLIT
def test_layer_norm_kernel_takes_a_strided_input(split):
    x = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32).T  # (4, 6), not contiguous
    weight, bias = np.linspace(0.5, 1.5, 6, dtype=np.float32), np.zeros(6, np.float32)
    with threads(split):
        assert_kernel_matches_reference(
            lambda a, w, b: F.layer_norm(a, w.shape, w, b, 1e-5), [x, weight, bias], atol=2e-5
        )


@SPLIT
def test_gelu_kernel_is_the_exact_erf_form(split):
    x = np.linspace(-5, 5, 10001, dtype=np.float32)  # more than one chunk of the split forward
    exact = np.array([0.5 * v * (1 + __import__("math").erf(v / np.sqrt(2))) for v in x.astype(np.float64)])
    with threads(split):
        np.testing.assert_allclose(norm_act_cpu.gelu_forward(x)[0], exact, atol=2e-6)


@SPLIT
def test_gelu_backward_is_the_exact_derivative(split):
    """grad * (Phi(x) + x * phi(x)) against libm's erf and exp in float64, past the range where
    the kernel's Gaussian is cut to 0 (|x| > 6.6) and out to values whose square is large."""
    x = np.concatenate([np.linspace(-12, 12, 24001), [-1e6, -40.0, 40.0, 1e6]]).astype(np.float32)
    x64 = x.astype(np.float64)
    cdf = 0.5 * (1 + np.array([__import__("math").erf(v / np.sqrt(2)) for v in x64]))
    exact = cdf + x64 * np.exp(-0.5 * x64 * x64) / np.sqrt(2 * np.pi)
    grad = np.cos(np.arange(x.size)).astype(np.float32)
    with threads(split):
        np.testing.assert_allclose(norm_act_cpu.gelu_backward(x, grad), grad * exact, rtol=0, atol=4e-7)


@SPLIT
def test_gelu_backward_takes_a_strided_input_and_gradient(split):
    x = np.linspace(-4, 4, 40, dtype=np.float32).reshape(5, 8).T  # (8, 5), not contiguous
    grad = np.linspace(1, 2, 40, dtype=np.float32).reshape(8, 5)[:, ::-1]
    with threads(split):
        got = norm_act_cpu.gelu_backward(x, grad)
    want = norm_act_reference.gelu_backward(norm_act_reference.gelu_forward(x.astype(np.float64))[1], grad)
    np.testing.assert_allclose(got, want, atol=1e-6)
