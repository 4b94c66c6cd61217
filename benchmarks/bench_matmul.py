"""Matrix products: NumPy's BLAS (OpenBLAS), MKL (kernels/matmul_mkl.py), the Numba kernel
(kernels/matmul_cpu.py), single-threaded OpenBLAS split over Numba's threads (kernels/matmul_panels.py,
what a process tuned for training runs) and PyTorch, each in its own process.

Shapes: square n = 256 ... 2048, and the products of the GPT preset's transformer (n_embd 128,
batch 12 x block 64 = 768 rows): the qkv projection (768,128)@(128,384), the MLP up and down
projections (768,128)@(128,512) and (768,512)@(512,128), the attention output projection
(768,128)@(128,128) and the language-model head (768,128)@(128,65). Each kernel's result is first
checked against BLAS in float64 arithmetic; then each is timed after a warm-up (the Numba compile
time is reported separately). Each implementation runs in its own process, the processes taken
in turn (`--rounds` times): PyTorch's OpenMP threads would otherwise slow the others. The table
says which implementation wins each shape. NumPy's BLAS stays tinyllm's default, as it needs
nothing extra; the MKL column appears when the `mkl` package is installed (`tinyllm[mkl]`). Columns for the numba.cuda kernel and CuPy's cuBLAS appear
when a GPU is present. Goal: Numba at least 0.5x BLAS at n = 1024 and 2048.

    flock /tmp/tinyllm-bench.lock python benchmarks/bench_matmul.py [--threads 2] [--rounds 3] [--sizes 256 1024]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numba  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import tinyllm as tl  # noqa: E402
from benchmarks.common import alternate, load_line, machine_header, measure, print_table, report, save_plot, time_once  # noqa: E402
from tinyllm.kernels import matmul_cpu, matmul_panels  # noqa: E402

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


# NumPy's BLAS (OpenBLAS, its own threads), matmul_panels (single-threaded BLAS on Numba's threads: the
# matmul of a process tuned for training), matmul_mkl, matmul_cpu, PyTorch
IMPLEMENTATIONS = ["BLAS", "panels", "MKL", "numba", "torch"]


def product(impl: str):
    """Return (convert, multiply) of one implementation: convert turns a NumPy array into its
    operand type (outside the timing), multiply(a, b) returns a @ b as a NumPy array."""
    if impl == "BLAS":
        return np.asarray, np.matmul
    if impl == "MKL":
        from tinyllm.kernels import matmul_mkl

        return np.asarray, matmul_mkl.matmul
    if impl == "numba":
        return np.asarray, matmul_cpu.matmul_2d
    if impl == "panels":
        return np.asarray, matmul_panels.matmul
    import torch

    return torch.from_numpy, lambda a, b: a @ b


def run_worker(impl: str, threads: int, sizes: list[int], dtype: str) -> None:
    """Check, then time every shape with one implementation in this process; report samples."""
    if impl == "torch":
        import torch

        torch.set_num_threads(threads)
    else:
        from tinyllm.kernels import tune_for_training

        tune_for_training()  # as the trainer runs: Numba on OpenMP's threads, BLAS single-threaded
        numba.set_num_threads(threads)
    convert, fn = product(impl)
    rng = np.random.default_rng(0)
    warm = convert(rng.standard_normal((8, 8)).astype(dtype))
    compile_seconds = time_once(lambda: fn(warm, warm))
    fn(warm, warm)  # MKL and torch load their libraries on the first call: limit them after it
    result = {"compile_s": compile_seconds}
    # BLAS's own threads, except for the panels, which split each product over Numba's threads
    with contextlib.nullcontext() if impl == "panels" else threadpool_limits(threads):
        for name, (n, k, m) in shapes(sizes).items():
            a = rng.standard_normal((n, k)).astype(dtype)
            b = rng.standard_normal((k, m)).astype(dtype)
            x, y = convert(a), convert(b)
            check(a, b, np.asarray(fn(x, y)), f"{impl} {name}")
            repeat = 5 if n * k * m > 1e9 else 15
            result[name] = [measure(lambda x=x, y=y: fn(x, y), repeat=repeat).median]
        result["header"] = machine_header()
    report(result)


def shapes(sizes: list[int]) -> dict:
    return {f"square {n}": (n, n, n) for n in sizes} | GPT_SHAPES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--rounds", type=int, default=3, help="processes per implementation, taken in turn")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args.worker, args.threads, args.sizes, args.dtype)
        return
    from tinyllm.kernels import matmul_mkl

    impls = [impl for impl in IMPLEMENTATIONS if impl != "MKL" or matmul_mkl.available()]
    extra = ["--threads", str(args.threads), "--dtype", args.dtype, "--sizes", *map(str, args.sizes)]
    results = alternate(__file__, impls, args.rounds, extra)
    print(results["BLAS"]["header"])
    print(
        f"matmul {args.dtype}, {args.threads} threads; each implementation in its own process, "
        f"{args.rounds} processes each taken in turn; the median of the processes' medians; {load_line()} at the end"
    )
    print(
        "first call (Numba JIT compile or cache load, library loading): "
        + ", ".join(f"{impl} {results[impl]['compile_s']:.2f} s" for impl in impls)
        + "\n"
    )
    rows, names, gflops = [], [], {impl: [] for impl in impls}
    for name, (n, k, m) in shapes(args.sizes).items():
        seconds = {impl: statistics.median(results[impl][name]) for impl in impls}
        if gpu := tl.cuda_is_available():
            a = np.random.default_rng(0).standard_normal((n, k)).astype(args.dtype)
            b = np.random.default_rng(1).standard_normal((k, m)).astype(args.dtype)
            seconds["numba.cuda"], seconds["cuBLAS"] = gpu_columns(a, b)
        flops = 2.0 * n * k * m
        for impl in impls:
            gflops[impl].append(flops / seconds[impl] / 1e9)
        row = [name, f"{n}x{k}x{m}"] + [seconds[i] * 1e3 for i in impls] + [flops / seconds[i] / 1e9 for i in impls]
        row += [seconds["BLAS"] / seconds[i] for i in impls if i != "BLAS"] + [min(impls, key=seconds.get)]
        if gpu:
            row += [seconds["numba.cuda"] * 1e3, seconds["cuBLAS"] * 1e3]
        rows.append(row)
        names.append(name)
    headers = ["shape", "n x k x m"] + [f"{i} ms" for i in impls] + [f"{i} GF/s" for i in impls]
    headers += [f"{i}/BLAS speed" for i in impls if i != "BLAS"] + ["fastest"]
    headers += ["numba.cuda ms", "cuBLAS ms"] if tl.cuda_is_available() else []
    print_table(headers, rows, title="speed ratios > 1 mean faster than NumPy's BLAS (OpenBLAS)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(impls)
    positions = np.arange(len(names))
    for offset, (impl, values) in enumerate(gflops.items()):
        label = {"BLAS": "NumPy's OpenBLAS", "panels": "OpenBLAS on Numba's threads (matmul_panels)",
                 "MKL": "MKL (matmul_mkl)", "numba": "Numba (matmul_cpu)"}.get(impl, impl)  # fmt: skip
        ax.bar(positions + (offset - (len(impls) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(positions, names, rotation=30, ha="right")
    ax.set_ylabel("GFLOP/s (median; higher is better)")
    ax.set_title(f"matmul {args.dtype}, {args.threads} threads, each library in its own process")
    top = max(max(values) for values in gflops.values())
    ax.set_ylim(0, top * 1.4)  # headroom: the legend sits above the bars, not on them
    ax.legend(fontsize=8, ncol=3, loc="upper center")
    fig.tight_layout()  # the rotated shape names inside the figure, above the load footnote
    save_plot(fig, "bench_matmul")


if __name__ == "__main__":
    main()
