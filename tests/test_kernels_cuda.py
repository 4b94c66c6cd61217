"""The numba.cuda kernels (attention forward and backward, tiled matmul) against the references.

Without a GPU these run under the numba.cuda simulator (NUMBA_ENABLE_CUDASIM=1, set below before
numba.cuda is first imported), which runs one Python thread per CUDA thread: shapes stay tiny,
but still cross the kernels' tiles (16 or 32 keys, 32 rows per block, 16 x 16 matmul tiles).
With a GPU (CuPy and CUDA present) the same tests run on CuPy arrays.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_attention import AttentionCase

import tinyllm as tl
from tinyllm import kernels
from tinyllm.backend import get_backend
from tinyllm.kernels import attention_reference

if not tl.cuda_is_available():
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    from numba.core import config

    config.reload_config()

from tinyllm.kernels import attention_cuda, matmul_cuda  # noqa: E402

DEVICE = get_backend("cuda") if tl.cuda_is_available() else get_backend("cpu")
TOLERANCE = {"float32": 1e-4, "float64": 1e-10}


@st.composite
def tiny_attention_cases(draw):
    lengths = st.sampled_from([1, 2, 5, 17, 33])
    t_q = draw(lengths)
    return AttentionCase(
        batch=draw(st.integers(1, 2)),
        n_head=draw(st.integers(1, 2)),
        t_q=t_q,
        t_k=t_q if draw(st.booleans()) else draw(lengths),
        depth=draw(st.integers(1, 8)),
        causal=draw(st.booleans()),
        mask=draw(st.sampled_from([None, "padding-bool", "padding-additive", "dense-additive", "decode-bool"])),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@given(case=tiny_attention_cases())
def test_cuda_attention_matches_reference_forward_and_gradients(dtype, case):
    q, k, v, grad_out, mask = (None if a is None else a.astype(dtype) if a.dtype != bool else a for a in case.arrays())
    bias = None if mask is None else attention_reference.mask_to_bias(mask, q)
    out, saved = attention_reference.forward(q, k, v, bias, case.causal, 0.4)
    expected = (out, *attention_reference.backward(saved, grad_out))
    q_d, k_d, v_d, bias_d, grad_out_d = (None if a is None else DEVICE.from_host(a) for a in (q, k, v, bias, grad_out))
    out_d, saved_d = attention_cuda.forward(q_d, k_d, v_d, bias_d, case.causal, 0.4)
    actual = (out_d, *attention_cuda.backward(saved_d, grad_out_d))
    for name, a, e in zip(("out", "dq", "dk", "dv"), actual, expected):
        a = DEVICE.to_host(a)
        assert np.all(np.isfinite(a)), name
        scale = max(float(np.abs(e).max()), 0.1)
        np.testing.assert_allclose(a, e, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype] * scale, err_msg=name)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@given(n=st.integers(1, 20), k=st.integers(1, 20), m=st.integers(1, 20), seed=st.integers(0, 2**32 - 1))
def test_cuda_matmul_matches_blas(dtype, n, k, m, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, k)).astype(dtype)
    b = rng.standard_normal((k, m)).astype(dtype)
    c = DEVICE.to_host(matmul_cuda.matmul_2d(DEVICE.from_host(a), DEVICE.from_host(b)))
    np.testing.assert_allclose(c, a @ b, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype] * k)


def test_cuda_kernels_selected_through_the_ops():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 3, 4)) for _ in range(3))
    w = rng.standard_normal((4, 2))
    results = []
    for attention, matmul in (("reference", "blas"), ("cuda", "cuda")):
        tq, tk, tv = (tl.tensor(a, device=DEVICE.name, requires_grad=True) for a in (q, k, v))
        tw = tl.tensor(w, device=DEVICE.name, requires_grad=True)
        with kernels.use(attention=attention, matmul=matmul):
            out = tl.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True) @ tw
            out.sum().backward()
        results.append([t.numpy() for t in (out, tq.grad, tk.grad, tv.grad, tw.grad)])
    for reference, cuda in zip(*results):
        np.testing.assert_allclose(cuda, reference, rtol=1e-10, atol=1e-10)
