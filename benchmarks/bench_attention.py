"""Causal attention, forward and forward+backward: reference NumPy, fused Numba, PyTorch SDPA.

B=8, H=6, D=64, float32, causal, T from 64 to 2048. Each implementation runs in its own process,
the processes taken in turn (`--rounds` times; inside a process each length is timed after a
warm-up): PyTorch's OpenMP threads spin after its work and slowed Numba's threads when both ran
in one process. The SDPA process first checks the fused kernel's output and three gradients (and
the reference's, where it fits in memory) against PyTorch's at every length. The Numba compile
time is measured once and reported separately. Columns for the numba.cuda kernel (on CuPy
arrays) appear when a GPU is present (measured in the Numba process). Goal: fused
forward+backward at least as fast as PyTorch SDPA with the same thread count.

    python benchmarks/bench_attention.py [--rounds 3] [--threads 2] [--lengths 128 1024]
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


import tinyllm as tl  # noqa: E402
from benchmarks.common import (  # noqa: E402
    alternate,
    load_line,
    machine_header,
    measure,
    print_table,
    report,
    save_plot,
    set_threads,
)
from tinyllm.kernels import attention_cpu, attention_reference  # noqa: E402

BATCH, N_HEAD, DEPTH = 8, 6, 64
REFERENCE_MAX_T = 1024  # the reference's (B, H, T, T) arrays: 4 of 805 MB each at T = 2048


def make_inputs(t: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((BATCH, N_HEAD, t, DEPTH)).astype(np.float32) for _ in range(4)]


def kernel_fwd_bwd(module, q, k, v, grad_out, scale):
    out, saved = module.forward(q, k, v, None, True, scale)
    return (out, *module.backward(saved, grad_out))


def torch_fwd_bwd(q, k, v, grad_out):
    tq, tk, tv = (torch.from_numpy(a).requires_grad_(True) for a in (q, k, v))
    out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
    out.backward(torch.from_numpy(grad_out))
    return out.detach().numpy(), tq.grad.numpy(), tk.grad.numpy(), tv.grad.numpy()


def torch_fwd(q, k, v):
    with torch.no_grad():
        tq, tk, tv = (torch.from_numpy(a) for a in (q, k, v))
        return torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True).numpy()


def check(t: int, scale: float) -> None:
    """Assert that the fused kernel (and the reference) match PyTorch SDPA at length t."""
    q, k, v, grad_out = make_inputs(t, seed=1)
    expected = torch_fwd_bwd(q, k, v, grad_out)
    modules = [attention_cpu] + ([attention_reference] if t <= REFERENCE_MAX_T else [])
    for module in modules:
        for name, actual, wanted in zip(
            ("out", "dq", "dk", "dv"), kernel_fwd_bwd(module, q, k, v, grad_out, scale), expected
        ):
            error = float(np.abs(actual - wanted).max() / np.abs(wanted).max())
            assert error < 1e-4, f"{module.__name__} {name} at T={t}: relative error {error:.2e}"


def peak_extra_mb(fn) -> float:
    """Return the peak MB allocated while fn runs (tracemalloc sees NumPy and Numba arrays)."""
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 1e6


def cuda_columns(q, k, v, grad_out, scale):
    """Return (fwd, fwd+bwd) seconds of the numba.cuda kernel on CuPy arrays."""
    import cupy

    from tinyllm.kernels import attention_cuda

    tensors = [cupy.asarray(a) for a in (q, k, v, grad_out)]

    def fwd():
        attention_cuda.forward(*tensors[:3], None, True, scale)
        cupy.cuda.Device().synchronize()

    def fwd_bwd():
        kernel_fwd_bwd(attention_cuda, *tensors, scale)
        cupy.cuda.Device().synchronize()

    return measure(fwd).median, measure(fwd_bwd).median


def implementation(name: str, t: int, q, k, v, grad_out, scale: float):
    """Return (forward, forward+backward) functions of one implementation, None where it does not run."""
    if name == "numba":
        return (
            lambda: attention_cpu.forward(q, k, v, None, True, scale),
            lambda: kernel_fwd_bwd(attention_cpu, q, k, v, grad_out, scale),
        )
    if name == "torch":
        return lambda: torch_fwd(q, k, v), lambda: torch_fwd_bwd(q, k, v, grad_out)
    if t > REFERENCE_MAX_T:
        return None
    return (
        lambda: attention_reference.forward(q, k, v, None, True, scale),
        lambda: kernel_fwd_bwd(attention_reference, q, k, v, grad_out, scale),
    )


def run_worker(name: str, lengths: list[int], repeat: int) -> None:
    """Time one implementation at every length in this process and report (fwd, fwd+bwd) medians."""
    from tinyllm.kernels import tune_for_training

    tune_for_training()
    scale = 1.0 / DEPTH**0.5
    result = {"compile_s": 0.0}
    if name == "torch":
        for t in lengths:
            check(t, scale)
    if name == "numba":
        start = time.perf_counter()
        kernel_fwd_bwd(attention_cpu, *make_inputs(128), scale)
        result["compile_s"] = time.perf_counter() - start
    for t in lengths:
        q, k, v, grad_out = make_inputs(t)
        calls = implementation(name, t, q, k, v, grad_out, scale)
        if calls is None:
            continue
        fwd, fwd_bwd = calls
        result[f"T{t}"] = [[measure(fwd, repeat=repeat).median, measure(fwd_bwd, repeat=repeat).median]]
        if name == "numba" and tl.cuda_is_available():
            result[f"cuda T{t}"] = [list(cuda_columns(q, k, v, grad_out, scale))]
    if name == "numba":
        memory_t = min(1024, max(lengths))
        q, k, v, _ = make_inputs(memory_t)
        result["memory"] = (
            f"peak allocation of one forward at T={memory_t}: "
            f"reference {peak_extra_mb(lambda: attention_reference.forward(q, k, v, None, True, scale)):.0f} MB, "
            f"fused {peak_extra_mb(lambda: attention_cpu.forward(q, k, v, None, True, scale)):.1f} MB "
            f"(the output alone is {q.nbytes / 1e6:.1f} MB)"
        )
    report(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="processes per implementation, taken in turn")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256, 512, 1024, 2048])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        set_threads(args.threads)
        run_worker(args.worker, args.lengths, args.repeat)
        return
    print(machine_header())
    print(f"attention: B={BATCH} H={N_HEAD} D={DEPTH} float32 causal, {args.threads} threads\n")
    extra = ["--threads", str(args.threads), "--repeat", str(args.repeat), "--lengths", *map(str, args.lengths)]
    results = alternate(__file__, ["numba", "torch", "reference"], args.rounds, extra)
    print(f"Numba JIT compile (or cache load) of the fused forward+backward: {results['numba']['compile_s']:.2f} s\n")
    gpu = any(key.startswith("cuda") for key in results["numba"])

    def median_ms(name: str, key: str):
        runs = results[name].get(key)
        if not runs:
            return float("nan"), float("nan")
        return tuple(float(np.median([run[i] for run in runs])) * 1e3 for i in (0, 1))

    rows, plot = [], {"reference": [], "numba": [], "torch": [], "cuda": []}
    for t in args.lengths:
        ms = {name: median_ms(name, f"T{t}") for name in ("reference", "numba", "torch")}
        if gpu:
            ms["cuda"] = median_ms("numba", f"cuda T{t}")
        for name in plot:
            plot[name].append(ms[name][1] if name in ms else np.nan)
        row = [t, *ms["reference"], *ms["numba"], *ms["torch"]]
        row += [ms["torch"][0] / ms["numba"][0], ms["torch"][1] / ms["numba"][1]]
        if gpu:
            row += list(ms["cuda"])
        rows.append(row)
    headers = ["T", "ref fwd ms", "ref f+b ms", "numba fwd ms", "numba f+b ms", "torch fwd ms", "torch f+b ms"]
    headers += ["torch/numba fwd", "torch/numba f+b"] + (["cuda fwd ms", "cuda f+b ms"] if gpu else [])
    print_table(
        headers,
        rows,
        title=f"medians over {args.rounds} processes per implementation (ratio > 1: the fused Numba kernel is faster "
        f"than PyTorch SDPA), processes alternated; {load_line()} at the end",
    )
    print("\n" + results["numba"]["memory"])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in plot.items():
        if not all(np.isnan(values)):
            ax.plot(args.lengths, values, marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("forward+backward ms (median)")
    ax.set_title(f"causal attention B={BATCH} H={N_HEAD} D={DEPTH}, {args.threads} threads")
    ax.legend()
    save_plot(fig, "bench_attention")


if __name__ == "__main__":
    main()
