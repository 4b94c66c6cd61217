"""The kernel protocol: the kernel chosen in an op's forward is the one its backward runs, under
every combination of `kernels.use` choices around forward and backward."""

import itertools
import os
import subprocess
import sys

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


def _run_with_kernels(setting: str, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TINYLLM_KERNELS": setting}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_tinyllm_kernels_environment_variable_sets_the_choices_at_start_up():
    code = (
        "import tinyllm as tl; from tinyllm import kernels; x = tl.randn(3, 3, requires_grad=True); "
        "print(kernels.selected('matmul'), kernels.selected('attention'), (x @ x).grad_fn.kernel.__name__)"
    )
    done = _run_with_kernels(" matmul = numba , attention=reference", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["numba", "reference", "tinyllm.kernels.matmul_cpu"]


@pytest.mark.parametrize("setting", ["matmul=fastest", "convolution=numba", "matmul"])
def test_a_bad_tinyllm_kernels_value_is_a_typed_error_naming_the_variable(setting):
    done = _run_with_kernels(setting, "import tinyllm as tl; tl.randn(2, 2) @ tl.randn(2, 2)")
    assert done.returncode != 0
    assert "ArgumentError: TINYLLM_KERNELS: cannot read" in done.stderr and "matmul=auto|blas" in done.stderr


def test_the_command_line_reports_a_bad_tinyllm_kernels_value_in_one_line(tmp_path):
    code = "import sys; from tinyllm.cli.main import main; sys.exit(main())"
    env = {**os.environ, "TINYLLM_KERNELS": "matmul=fastest"}
    argv = [sys.executable, "-c", code, "sample", "--checkpoint", str(tmp_path), "--max-new-tokens", "2"]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert (
        done.stderr.startswith("tinyllm sample: error: ArgumentError: TINYLLM_KERNELS")
        and "Traceback" not in done.stderr
    )
