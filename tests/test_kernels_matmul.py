"""Matmul kernels: the Numba CPU kernel against BLAS (`np.matmul`) on hypothesis-drawn shapes.

Shapes cross the kernel's 4 x 4 register tile, its 64-row panel and its 512-long inner block;
the engine's matmul op gives the same values and gradients with either kernel selected. The
CUDA kernel's comparison is in test_kernels_cuda.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyllm as tl
from tinyllm import kernels
from tinyllm.kernels import matmul_cpu

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
    for kernel in ("blas", "numba"):
        ta, tb = tl.tensor(a, requires_grad=True), tl.tensor(b, requires_grad=True)
        with kernels.use(matmul=kernel):
            out = ta @ tb
            (out * out).sum().backward()
        results.append((out.numpy(), ta.grad.numpy(), tb.grad.numpy()))
    for blas, numba in zip(*results):
        np.testing.assert_allclose(numba, blas, rtol=1e-12, atol=1e-12)


def test_forced_numba_matmul_on_the_strict_device_raises_device_error():
    a = tl.randn(2, 2, device="strict")
    with kernels.use(matmul="numba"), pytest.raises(tl.DeviceError):
        a @ a
