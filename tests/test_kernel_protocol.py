"""The kernel protocol: the kernel chosen in an op's forward is the one its backward runs, under
every combination of `kernels.use` choices around forward and backward."""

import itertools

import numpy as np
import pytest

import tinyllm as tl
import tinyllm.nn.functional as F
from tinyllm import kernels
from tinyllm.errors import ArgumentError

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 3, 8)).astype(np.float32)
Q = RNG.standard_normal((1, 2, 600, 8)).astype(np.float32)  # 2 * 600 * 600 scores: auto picks Numba
W = RNG.standard_normal((5, 8)).astype(np.float32)
TARGETS = np.array([1, 7, -100, 0, 3, 3])  # one row ignored

CASES = {
    "norm_act": lambda x: F.gelu(x) * 1.5 + F.layer_norm(x, (8,), tl.ones(8), tl.zeros(8)),
    "matmul": lambda x: F.linear(x, tl.tensor(W)) @ tl.tensor(W),
    "attention": lambda q: F.scaled_dot_product_attention(q, q, q, is_causal=True),
    "cross_entropy": lambda x: F.cross_entropy(x.reshape(-1, 8), tl.tensor(TARGETS)),
}
# the "adamw" family has no backward: tests/test_kernels_fused.py compares its kernels
INPUTS = {"norm_act": X, "matmul": X, "attention": Q, "cross_entropy": X}
CHOICES = {family: ["auto", *kernels.FAMILIES[family]] for family in CASES}
for family in CHOICES:
    if "cuda" in CHOICES[family]:
        CHOICES[family].remove("cuda")  # needs a GPU or the simulator (tests/test_kernels_cuda.py)


def gradient(family: str, forward_kernel: str, backward_kernel: str) -> np.ndarray:
    x = tl.tensor(INPUTS[family], requires_grad=True)
    with kernels.use(**{family: forward_kernel}):
        out = CASES[family](x)
    with kernels.use(**{family: backward_kernel}):
        (out * out).sum().backward()
    return x.grad.numpy()


@pytest.mark.parametrize(
    "family, forward_kernel, backward_kernel",
    [(f, a, b) for f in CASES for a, b in itertools.product(CHOICES[f], repeat=2)],
)
def test_backward_runs_the_kernel_that_ran_forward(family, forward_kernel, backward_kernel):
    expected = gradient(family, "reference" if family != "matmul" else "blas", "auto")
    got = gradient(family, forward_kernel, backward_kernel)
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-4)


def test_the_choice_is_kept_on_the_function():
    x = tl.tensor(X, requires_grad=True)
    with kernels.use(norm_act="reference"):
        out = F.gelu(x)
    assert out.grad_fn.kernel is kernels.FAMILIES["norm_act"]["reference"]
    assert F.gelu(x).grad_fn.kernel is kernels.FAMILIES["norm_act"]["numba"]


def test_unknown_families_and_kernels_are_typed_errors():
    with pytest.raises(ArgumentError, match="fastest"):
        kernels.use(attention="fastest")
    with pytest.raises(ArgumentError, match="convolution"):
        kernels.use(convolution="numba")
