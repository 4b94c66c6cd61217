"""Matmul kernels: the Numba CPU kernel, the BLAS panels on Numba's threads and the MKL kernel
against BLAS (`np.matmul`) on hypothesis-drawn shapes.

Shapes cross the Numba kernel's 4 x 4 register tile, its 64-row panel and its 512-long inner
block; the MKL kernel gets C-ordered, transposed and strided operands (each passed to its GEMM
differently); the panels kernel gets every layout it splits (rows, inner axis, stacks) and the
ones it leaves to BLAS; the engine's matmul op gives the same values and gradients with any kernel
selected. The CUDA kernel's comparison is in test_kernels_cuda.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyllm as tl
from tinyllm import kernels
from tinyllm.errors import UnsupportedError
from tinyllm.kernels import matmul_cpu, matmul_mkl, matmul_panels

TOLERANCE = {"float32": 1e-5, "float64": 1e-12}
sides = st.one_of(st.sampled_from([1, 4, 63, 64, 65]), st.integers(1, 140))


def assert_matches_blas(actual, a, b, dtype):
    expected = np.matmul(a.astype(np.float64), b.astype(np.float64))
    scale = a.shape[-1] * max(float(np.abs(a).max()), 1e-3) * max(float(np.abs(b).max()), 1e-3)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOLERANCE[dtype] * scale)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@given(n=sides, k=st.one_of(sides, st.integers(500, 1030)), m=sides, seed=st.integers(0, 2**32 - 1))
def test_numba_matmul_matches_blas(dtype, n, k, m, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, k)).astype(dtype)
    b = rng.standard_normal((k, m)).astype(dtype)
    c = matmul_cpu.matmul_2d(a, b)
    assert c.shape == (n, m) and c.dtype == np.dtype(dtype)
    assert_matches_blas(c, a, b, dtype)


def test_numba_matmul_takes_transposed_and_read_only_operands():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((37, 21))
    b = np.broadcast_to(rng.standard_normal((1, 37)), (9, 37))  # read-only, stride 0
    assert_matches_blas(matmul_cpu.matmul_2d(a.T, b.T), a.T, b.T, "float64")


@given(
    batch=st.sampled_from([(), (2,), (3, 2)]),
    b_batched=st.booleans(),
    n=st.integers(1, 9),
    k=st.integers(1, 9),
    m=st.integers(1, 9),
)
def test_matmul_op_with_numba_kernel_matches_blas_forward_and_gradients(batch, b_batched, n, k, m):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(batch + (n, k))
    b = rng.standard_normal((batch if b_batched else ()) + (k, m))
    results = []
    for kernel in ("blas", "numba", "mkl", "panels"):
        ta, tb = tl.tensor(a, requires_grad=True), tl.tensor(b, requires_grad=True)
        with kernels.use(matmul=kernel):
            out = ta @ tb
            (out * out).sum().backward()
        results.append((out.numpy(), ta.grad.numpy(), tb.grad.numpy()))
    for other in results[1:]:
        for blas, value in zip(results[0], other):
            np.testing.assert_allclose(value, blas, rtol=1e-12, atol=1e-12)


PANEL_CASES = {  # (shape of a, shape of b, how a and b are laid out)
    "rows": ((70, 33), (33, 41), "C", "C"),
    "rows, b transposed": ((70, 33), (33, 41), "C", "F"),
    "inner axis (a transposed)": ((70, 33), (33, 41), "F", "C"),
    "one row": ((1, 300), (300, 5), "C", "C"),
    "stacked rows": ((3, 2, 11, 33), (33, 41), "C", "C"),
    "stacks": ((4, 11, 33), (4, 33, 9), "C", "C"),
    "broadcast stacks": ((2, 1, 11, 33), (3, 33, 9), "C", "C"),
    "strided a": ((70, 33), (33, 41), "strided", "C"),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", PANEL_CASES)
def test_panels_matmul_matches_blas_on_every_split(monkeypatch, dtype, case):
    monkeypatch.setattr(matmul_panels, "SERIAL_WORK", 0)  # split even these small products
    shape_a, shape_b, layout_a, layout_b = PANEL_CASES[case]
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape_a).astype(dtype)
    b = rng.standard_normal(shape_b).astype(dtype)
    layout = {"C": lambda x: x, "F": LAYOUTS["transposed"], "strided": LAYOUTS["strided"]}
    a, b = layout[layout_a](a), layout[layout_b](b)
    c = matmul_panels.matmul(a, b)
    assert c.shape == np.matmul(a, b).shape and c.dtype == np.dtype(dtype)
    assert_matches_blas(c, a, b, dtype)


@given(n=sides, k=sides, m=sides, transposed=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_panels_matmul_matches_blas_on_drawn_shapes(n, k, m, transposed, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, k)).astype(np.float32)
    b = rng.standard_normal((k, m)).astype(np.float32)
    a = LAYOUTS["transposed"](a) if transposed else a
    saved = matmul_panels.SERIAL_WORK
    matmul_panels.SERIAL_WORK = 0
    try:
        assert_matches_blas(matmul_panels.matmul(a, b), a, b, "float32")
    finally:
        matmul_panels.SERIAL_WORK = saved


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("with_bias", [True, False])
@given(rows=sides, inner=sides, out=sides, seed=st.integers(0, 2**32 - 1))
def test_panels_linear_and_its_backward_match_numpy(dtype, with_bias, rows, inner, out, seed):
    """The bias folded into the GEMM, and summed by the threads that make the weight gradient."""
    saved = matmul_panels.SERIAL_WORK
    matmul_panels.SERIAL_WORK = 0  # split even these small products
    try:
        check_panels_linear(dtype, with_bias, rows, inner, out, seed)
    finally:
        matmul_panels.SERIAL_WORK = saved


def check_panels_linear(dtype, with_bias, rows, inner, out, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, inner)).astype(dtype)
    w = rng.standard_normal((out, inner)).astype(dtype)
    bias = rng.standard_normal(out).astype(dtype) if with_bias else None
    grad = rng.standard_normal((rows, out)).astype(dtype)
    y = matmul_panels.linear(x, w, bias)
    assert_matches_blas(y - (0 if bias is None else bias), x, w.T, dtype)
    grad_x, grad_w, grad_b = matmul_panels.linear_backward(grad, x, w, with_bias)
    assert_matches_blas(grad_x, grad, w, dtype)
    assert_matches_blas(grad_w, grad.T, x, dtype)
    if with_bias:
        np.testing.assert_allclose(grad_b, grad.astype(np.float64).sum(axis=0), rtol=0, atol=TOLERANCE[dtype] * rows)
    else:
        assert grad_b is None


def test_panels_linear_promotes_a_bias_of_another_dtype_and_takes_strided_rows(monkeypatch):
    monkeypatch.setattr(matmul_panels, "SERIAL_WORK", 0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 24)).astype(np.float32)[:, ::2]  # strided: the fallback path
    w = rng.standard_normal((7, 12)).astype(np.float32)
    bias = rng.standard_normal(7)  # float64
    y = matmul_panels.linear(x, w, bias)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, x.astype(np.float64) @ w.T.astype(np.float64) + bias, atol=1e-5)


def test_linear_layer_with_panels_kernel_matches_torch_forward_and_gradients(monkeypatch):
    import torch

    monkeypatch.setattr(matmul_panels, "SERIAL_WORK", 0)
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((3, 5, 16)), rng.standard_normal((9, 16)), rng.standard_normal(9)
    tx, tw, tb = (tl.tensor(a, dtype="float32", requires_grad=True) for a in (x, w, b))
    with kernels.use(matmul="panels"):
        out = tl.nn.functional.linear(tx, tw, tb)
        assert out.grad_fn.kernel is matmul_panels
        (out * out).sum().backward()
    px, pw, pb = (torch.tensor(a, dtype=torch.float32, requires_grad=True) for a in (x, w, b))
    expected = torch.nn.functional.linear(px, pw, pb)
    (expected * expected).sum().backward()
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-5, atol=1e-4)
    for mine, theirs in ((tx, px), (tw, pw), (tb, pb)):
        np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-5, atol=1e-3)


def test_forced_numba_matmul_on_the_strict_device_raises_device_error():
    a = tl.randn(2, 2, device="strict")
    with kernels.use(matmul="numba"), pytest.raises(tl.DeviceError):
        a @ a


LAYOUTS = {
    "C order": lambda x: x,
    "transposed": lambda x: np.ascontiguousarray(x.T).T,  # F order: the GEMM's Trans flag
    "strided": lambda x: np.repeat(x, 2, axis=1)[:, ::2],  # neither: copied to C order
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout_a, layout_b", [("C order", "C order"), ("transposed", "C order"),
                                                ("C order", "transposed"), ("strided", "transposed")])  # fmt: skip
@given(n=sides, k=sides, m=sides, seed=st.integers(0, 2**32 - 1))
def test_mkl_matmul_matches_blas(dtype, layout_a, layout_b, n, k, m, seed):
    rng = np.random.default_rng(seed)
    a = LAYOUTS[layout_a](rng.standard_normal((n, k)).astype(dtype))
    b = LAYOUTS[layout_b](rng.standard_normal((k, m)).astype(dtype))
    c = matmul_mkl.matmul(a, b)
    assert c.shape == (n, m) and c.dtype == np.dtype(dtype)
    assert_matches_blas(c, a, b, dtype)


def test_mkl_matmul_of_empty_and_mixed_operands():
    assert matmul_mkl.matmul(np.ones((0, 3), np.float32), np.ones((3, 4), np.float32)).shape == (0, 4)
    np.testing.assert_array_equal(matmul_mkl.matmul(np.ones((2, 0)), np.ones((0, 3))), np.zeros((2, 3)))
    mixed = matmul_mkl.matmul(np.ones((2, 3), np.float32), np.full((3, 1), 0.5))
    assert mixed.dtype == np.float64 and np.all(mixed == 1.5)
    with pytest.raises(UnsupportedError, match="float32 or float64"):
        matmul_mkl.matmul(np.ones((2, 2), np.int64), np.ones((2, 2), np.int64))


def test_a_missing_mkl_is_a_typed_error_naming_the_install(monkeypatch):
    monkeypatch.setattr(matmul_mkl, "library_path", lambda: None)
    x = tl.randn(2, 2)
    with kernels.use(matmul="mkl"), pytest.raises(UnsupportedError, match=r"tinyllm\[mkl\]"):
        x @ x
    monkeypatch.setattr(matmul_mkl, "_library", None)
    with pytest.raises(UnsupportedError, match=r"tinyllm\[mkl\]"):
        matmul_mkl.matmul(np.ones((2, 2)), np.ones((2, 2)))
