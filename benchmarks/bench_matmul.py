"""Matrix products: NumPy's BLAS, the Numba kernel (kernels/matmul_cpu.py) and PyTorch.

Shapes: square n = 256 ... 2048, and the products of the GPT preset's transformer (n_embd 128,
batch 12 x block 64 = 768 rows): the qkv projection (768,128)@(128,384), the MLP up and down
projections (768,128)@(128,512) and (768,512)@(512,128), the attention output projection
(768,128)@(128,128) and the language-model head (768,128)@(128,65). Each kernel's result is first
checked against BLAS in float64 arithmetic; then each is timed after a warm-up (the Numba compile
time is reported separately). The table says which implementation wins each shape; BLAS stays
tinyllm's default wherever it wins. Columns for the numba.cuda kernel and CuPy's cuBLAS appear
when a GPU is present. Goal: Numba at least 0.5x BLAS at n = 1024 and 2048.

    flock /tmp/tinyllm-bench.lock python benchmarks/bench_matmul.py [--threads 2] [--sizes 256 1024]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numba  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import tinyllm as tl  # noqa: E402
from benchmarks.common import machine_header, measure, print_table, save_plot  # noqa: E402
from tinyllm.kernels import matmul_cpu  # noqa: E402

GPT_SHAPES = {
    "gpt qkv": (768, 128, 384),
    "gpt mlp up": (768, 128, 512),
    "gpt mlp down": (768, 512, 128),
    "gpt attn proj": (768, 128, 128),
    "gpt lm head": (768, 128, 65),
}


def check(a, b, c, name: str) -> None:
    expected = a.astype(np.float64) @ b.astype(np.float64)
    error = float(np.abs(c - expected).max() / (np.abs(expected).max() + 1e-30))
    assert error < 1e-5, f"{name}: relative error {error:.2e} against BLAS"


def gpu_columns(a, b):
    """Return (numba.cuda seconds, cuBLAS seconds) on CuPy arrays."""
    import cupy

    from tinyllm.kernels import matmul_cuda

    da, db = cupy.asarray(a), cupy.asarray(b)
    check(a, b, cupy.asnumpy(matmul_cuda.matmul_2d(da, db)), "numba.cuda")

    def run(fn):
        def timed():
            fn()
            cupy.cuda.Device().synchronize()

        return measure(timed).median

    return run(lambda: matmul_cuda.matmul_2d(da, db)), run(lambda: da @ db)


def time_shape(a, b, ta, tb, repeat: int) -> dict:
    """Return the median seconds of a @ b with BLAS, the Numba kernel and PyTorch."""
    return {
        "BLAS": measure(lambda: a @ b, repeat=repeat).median,
        "numba": measure(lambda: matmul_cpu.matmul_2d(a, b), repeat=repeat).median,
        "torch": measure(lambda: ta @ tb, repeat=repeat).median,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()
    from tinyllm.kernels import tune_for_training

    tune_for_training()  # as the trainer runs: the workqueue threads for the parallel Numba matmul
    numba.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    gpu = tl.cuda_is_available()
    shapes = {f"square {n}": (n, n, n) for n in args.sizes} | GPT_SHAPES
    rng = np.random.default_rng(0)
    with threadpool_limits(args.threads, user_api="blas"):
        print(machine_header())
        print(f"matmul {args.dtype}, {args.threads} threads\n")
        warm = rng.standard_normal((8, 8)).astype(args.dtype)
        compile_seconds = time.perf_counter()
        matmul_cpu.matmul_2d(warm, warm)
        print(f"Numba JIT compile (or cache load): {time.perf_counter() - compile_seconds:.2f} s\n")
        rows, names, gflops = [], [], {"BLAS": [], "numba": [], "torch": []}
        for name, (n, k, m) in shapes.items():
            a = rng.standard_normal((n, k)).astype(args.dtype)
            b = rng.standard_normal((k, m)).astype(args.dtype)
            check(a, b, matmul_cpu.matmul_2d(a, b), f"numba {name}")
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            check(a, b, (ta @ tb).numpy(), f"torch {name}")
            seconds = time_shape(a, b, ta, tb, repeat=5 if n * k * m > 1e9 else 15)
            if gpu:
                seconds["numba.cuda"], seconds["cuBLAS"] = gpu_columns(a, b)
            flops = 2.0 * n * k * m
            for impl in gflops:
                gflops[impl].append(flops / seconds[impl] / 1e9)
            winner = min(("BLAS", "numba", "torch"), key=seconds.get)
            row = [name, f"{n}x{k}x{m}"] + [seconds[i] * 1e3 for i in ("BLAS", "numba", "torch")]
            row += [flops / seconds[i] / 1e9 for i in ("BLAS", "numba", "torch")]
            row += [seconds["BLAS"] / seconds["numba"], seconds["BLAS"] / seconds["torch"], winner]
            if gpu:
                row += [seconds["numba.cuda"] * 1e3, seconds["cuBLAS"] * 1e3]
            rows.append(row)
            names.append(name)
        headers = ["shape", "n x k x m", "BLAS ms", "numba ms", "torch ms", "BLAS GF/s", "numba GF/s", "torch GF/s"]
        headers += ["numba/BLAS speed", "torch/BLAS speed", "fastest"] + (["numba.cuda ms", "cuBLAS ms"] if gpu else [])
        print_table(headers, rows, title="medians; speed ratios > 1 mean faster than NumPy's BLAS")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.27
    positions = np.arange(len(names))
    for offset, (impl, values) in enumerate(gflops.items()):
        ax.bar(positions + (offset - 1) * width, values, width, label=impl)
    ax.set_xticks(positions, names, rotation=30, ha="right")
    ax.set_ylabel("GFLOP/s (median)")
    ax.set_title(f"matmul {args.dtype}, {args.threads} threads")
    ax.legend()
    save_plot(fig, "bench_matmul")


if __name__ == "__main__":
    main()
