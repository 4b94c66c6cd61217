"""tinyllm runs its parallel Numba kernels on the workqueue threading layer, unless told otherwise."""

import os
import subprocess
import sys

CODE = """
import numba
import tinyllm as tl
import tinyllm.nn.functional as F
from tinyllm.kernels import use
q = tl.randn(1, 2, 80, 16)
with use(attention="numba"):
    F.scaled_dot_product_attention(q, q, q, is_causal=True)
print(numba.threading_layer())
"""


def run(extra_env: dict) -> str:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"} | extra_env
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_parallel_kernels_use_the_sleeping_workqueue_threads():
    assert run({}) == "workqueue"


def test_an_explicit_numba_threading_layer_wins():
    assert run({"NUMBA_THREADING_LAYER": "omp"}) == "omp"
