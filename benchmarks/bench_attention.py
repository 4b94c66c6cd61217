"""Causal attention, forward and forward+backward: reference NumPy, fused Numba, PyTorch SDPA.

B=8, H=6, D=64, float32, causal, T from 128 to 2048 (the kernels issue's shapes). At each T the
fused kernel's output and three gradients are first checked against PyTorch's (and the
reference's, where it fits in memory); then each implementation is timed after a warm-up. The
Numba compile time is measured once and reported separately. Columns for the numba.cuda kernel
(on CuPy arrays) appear when a GPU is present. Goal: fused forward+backward at T=1024 at least as
fast as PyTorch SDPA with the same thread count.

    flock /tmp/tinyllm-bench.lock python benchmarks/bench_attention.py [--threads 2] [--lengths 128 1024]
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

import numba  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import tinyllm as tl  # noqa: E402
from benchmarks.common import machine_header, measure, print_table, save_plot  # noqa: E402
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


def time_length(inputs, scale: float, repeat: int, with_reference: bool, gpu: bool) -> dict:
    """Return {implementation: (forward seconds, forward+backward seconds)} at one length."""
    q, k, v, grad_out = inputs
    timed = {
        "numba": (
            measure(lambda: attention_cpu.forward(q, k, v, None, True, scale), repeat=repeat).median,
            measure(lambda: kernel_fwd_bwd(attention_cpu, q, k, v, grad_out, scale), repeat=repeat).median,
        ),
        "torch": (
            measure(lambda: torch_fwd(q, k, v), repeat=repeat).median,
            measure(lambda: torch_fwd_bwd(q, k, v, grad_out), repeat=repeat).median,
        ),
    }
    if with_reference:
        timed["reference"] = (
            measure(lambda: attention_reference.forward(q, k, v, None, True, scale), warmup=1, repeat=3).median,
            measure(lambda: kernel_fwd_bwd(attention_reference, q, k, v, grad_out, scale), warmup=1, repeat=3).median,
        )
    if gpu:
        timed["cuda"] = cuda_columns(q, k, v, grad_out, scale)
    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256, 512, 1024, 2048])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    numba.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    gpu = tl.cuda_is_available()
    scale = 1.0 / DEPTH**0.5
    with threadpool_limits(args.threads, user_api="blas"):
        print(machine_header())
        print(f"attention: B={BATCH} H={N_HEAD} D={DEPTH} float32 causal, {args.threads} threads\n")
        small = make_inputs(128)
        compile_seconds = time.perf_counter()
        kernel_fwd_bwd(attention_cpu, *small, scale)
        compile_seconds = time.perf_counter() - compile_seconds
        print(f"Numba JIT compile (or cache load) of the fused forward+backward: {compile_seconds:.2f} s\n")
        rows, plot = [], {"reference": [], "numba": [], "torch": [], "cuda": []}
        for t in args.lengths:
            check(t, scale)
            timed = time_length(make_inputs(t), scale, args.repeat, with_reference=t <= REFERENCE_MAX_T, gpu=gpu)
            ms = {name: (f * 1e3, fb * 1e3) for name, (f, fb) in timed.items()}
            for name in plot:
                plot[name].append(ms[name][1] if name in ms else np.nan)
            none = (float("nan"), float("nan"))
            row = [t, *ms.get("reference", none), *ms["numba"], *ms["torch"]]
            row += [ms["torch"][0] / ms["numba"][0], ms["torch"][1] / ms["numba"][1]]
            if gpu:
                row += list(ms["cuda"])
            rows.append(row)
        headers = ["T", "ref fwd ms", "ref f+b ms", "numba fwd ms", "numba f+b ms", "torch fwd ms", "torch f+b ms"]
        headers += ["torch/numba fwd", "torch/numba f+b"] + (["cuda fwd ms", "cuda f+b ms"] if gpu else [])
        print_table(headers, rows, title="medians (ratio > 1: the fused Numba kernel is faster than PyTorch SDPA)")
        memory_t = min(1024, max(args.lengths))
        q, k, v, _ = make_inputs(memory_t)
        print(
            f"\npeak allocation of one forward at T={memory_t}: "
            f"reference {peak_extra_mb(lambda: attention_reference.forward(q, k, v, None, True, scale)):.0f} MB, "
            f"fused {peak_extra_mb(lambda: attention_cpu.forward(q, k, v, None, True, scale)):.1f} MB "
            f"(the output alone is {q.nbytes / 1e6:.1f} MB)"
        )
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
