"""Importing tinyllm changes nothing process-wide; `tune_for_training()` (which the trainer and the
CLI's other commands call) puts Numba's parallel kernels on OpenMP's threads and makes BLAS
single-threaded, its products then split over those threads (matmul kernel "panels"), where Numba
has OpenMP and no other layer is asked for (workqueue and BLAS's own threads otherwise);
`tune_for_inference()` (`tinyllm sample` and `chat`) puts them on OpenMP's where Numba has it;
both ask glibc's malloc to keep freed memory."""

import ast
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
LAUNCH = """
import numba
import tinyllm as tl
import tinyllm.nn.functional as F
from tinyllm.kernels import tune_for_inference, tune_for_training, use
{before}
q = tl.randn(1, 2, 80, 16)
with use(attention="numba"):
    F.scaled_dot_product_attention(q, q, q, is_causal=True)
print(numba.threading_layer())
"""


def run(code: str, extra_env: dict) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_THREADING_LAYER", "TINYLLM_KEEP_MEMORY")}
    out = subprocess.run([sys.executable, "-c", code], env=env | extra_env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_leaves_numbas_threading_layer_alone():
    assert run(LAUNCH.format(before=""), {}) != "workqueue"  # Numba's own default (OpenMP or TBB)


def test_an_explicit_numba_threading_layer_wins():
    assert run(LAUNCH.format(before="tune_for_training()"), {"NUMBA_THREADING_LAYER": "omp"}) == "omp"
    assert run(LAUNCH.format(before="tune_for_inference()"), {"NUMBA_THREADING_LAYER": "workqueue"}) == "workqueue"


def _numba_has_openmp() -> bool:
    try:
        from numba.np.ufunc import omppool  # noqa: F401
    except ImportError:
        return False
    return True


def test_tune_for_inference_picks_openmps_fast_waking_threads():
    expected = "omp" if _numba_has_openmp() else "workqueue"
    assert run(LAUNCH.format(before="tune_for_inference()"), {}) == expected


TRAINING_POOL = """
import numpy as np
from threadpoolctl import threadpool_info
from tinyllm import kernels
print(kernels.tune_for_training()["blas_threads"])
a = np.ones((8, 8), np.float32)
print(kernels.choose("matmul", a, a).__name__.rsplit(".")[-1])
print(sorted({lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}))
"""


@pytest.mark.skipif(not _numba_has_openmp(), reason="the one pool needs Numba's OpenMP layer")
def test_tune_for_training_runs_blas_single_threaded_on_numbas_openmp_threads():
    assert run(LAUNCH.format(before="tune_for_training()"), {}) == "omp"
    assert run(TRAINING_POOL, {}).splitlines() == ["1", "matmul_panels", "[1]"]


def test_training_on_workqueue_leaves_blas_its_threads():
    blas_threads, matmul, _ = run(TRAINING_POOL, {"NUMBA_THREADING_LAYER": "workqueue"}).splitlines()
    assert (blas_threads, matmul) == ("None", "matmul_blas")


def test_training_without_the_one_pool_as_under_an_mpi_launcher():
    code = TRAINING_POOL.replace("tune_for_training()", "tune_for_training(one_pool=False)") + LAUNCH.format(before="")
    blas_threads, matmul, _, layer = run(code, {}).splitlines()
    assert (blas_threads, matmul, layer) == ("None", "matmul_blas", "workqueue")


TRAINING_STEPS = """
import tinyllm as tl
import tinyllm.nn.functional as F
from tinyllm import kernels
from tinyllm.models import GPT, GPTConfig
from tinyllm.optim import AdamW
kernels.tune_for_training()
tl.manual_seed(0)
model = GPT(GPTConfig(vocab_size=50, block_size=32, n_layer=2, n_head=2, n_embd=64))
optimizer = AdamW(model.parameters(), lr=1e-3)
ids = tl.randint(0, 50, (4, 33))
for _ in range(3):
    optimizer.zero_grad()
    logits = model(ids[:, :-1])
    loss = F.cross_entropy(logits.reshape(-1, 50), ids[:, 1:].reshape(-1))
    loss.backward()
    optimizer.step()
    print(repr(loss.item()))
x = logits.array.reshape(-1, 50)
print(kernels.choose("matmul", x, x.T).__name__.rsplit(".")[-1])
"""


@pytest.mark.skipif(not _numba_has_openmp(), reason="the one pool needs Numba's OpenMP layer")
def test_training_in_the_one_pool_follows_training_on_blas_threads():
    pool = run(TRAINING_STEPS, {}).splitlines()
    blas = run(TRAINING_STEPS, {"NUMBA_THREADING_LAYER": "workqueue"}).splitlines()
    assert (pool[-1], blas[-1]) == ("matmul_panels", "matmul_blas")
    np.testing.assert_allclose([float(v) for v in pool[:-1]], [float(v) for v in blas[:-1]], rtol=1e-5)
    assert float(pool[2]) < float(pool[0])  # it trains


CLI_TUNING = """
import argparse, numba
from tinyllm.cli import main as cli
args = argparse.Namespace(command="{command}", func=lambda args: 0)  # the command, without its work
cli.build_parser = lambda command: argparse.Namespace(parse_args=lambda argv: args)
cli.main(["{command}"])
print(numba.config.THREADING_LAYER)
"""


def test_the_cli_tunes_training_and_inference_commands_apart():
    training = "default" if _numba_has_openmp() else "workqueue"  # "default": the first of omp, workqueue that loads
    assert run(CLI_TUNING.format(command="train"), {}) == training
    assert run(CLI_TUNING.format(command="embed"), {}) == training  # batches beside BLAS, as training
    assert run(CLI_TUNING.format(command="sample"), {}) == "default"
    assert run(CLI_TUNING.format(command="chat"), {}) == "default"


def test_the_backend_layer_does_not_import_numba():
    backend_dir = Path(__file__).resolve().parent.parent / "tinyllm" / "backend"
    imported = set()
    for path in backend_dir.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert "numpy" in imported  # the walk sees the imports it should
    assert "numba" not in imported


@pytest.mark.skipif(not GLIBC, reason="the malloc tuning exists only for glibc")
def test_tune_for_training_keeps_freed_memory():
    assert run("from tinyllm.kernels import tune_for_training as t; print(t()['keeps_freed_memory'])", {}) == "True"


def test_the_memory_policy_can_be_switched_off():
    code = "from tinyllm.kernels import tune_for_training as t; print(t()['keeps_freed_memory'])"
    assert run(code, {"TINYLLM_KEEP_MEMORY": "0"}) == "False"
