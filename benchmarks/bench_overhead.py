"""Per-op overhead of the engine on tiny arrays, against raw NumPy and PyTorch (with grad).

On a (4, 4) array the arithmetic is a few nanoseconds; what is timed is the bookkeeping around
it: building the Tensor, the Function node, the broadcast and device checks. Goal: at most 2 µs
per op forward. Each op is checked against NumPy and PyTorch (forward and gradient) before it is
timed.

    flock /tmp/tinyllm-bench.lock python benchmarks/bench_overhead.py [--shape 4 4] [--inner 2000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tinyllm as tl  # noqa: E402
import tinyllm.nn.functional as F  # noqa: E402
from benchmarks.common import machine_header, measure, print_table, save_plot  # noqa: E402

GOAL_SECONDS = 2e-6


def numpy_softmax(x, y=None):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# name: (tinyllm op, PyTorch op, NumPy op); each takes (x, y) and uses what it needs. x is the
# input that needs grad, y a constant: a square matrix, or a row for the ops named "broadcast"
OPS = {
    "add": (lambda x, y: x + y, lambda x, y: x + y, lambda x, y: x + y),
    "mul": (lambda x, y: x * y, lambda x, y: x * y, lambda x, y: x * y),
    "add scalar": (lambda x, y: x + 1.5, lambda x, y: x + 1.5, lambda x, y: x + np.float32(1.5)),
    "div broadcast": (lambda x, y: x / y, lambda x, y: x / y, lambda x, y: x / y),
    "exp": (lambda x, y: x.exp(), lambda x, y: x.exp(), lambda x, y: np.exp(x)),
    "tanh": (lambda x, y: x.tanh(), lambda x, y: x.tanh(), lambda x, y: np.tanh(x)),
    "relu": (lambda x, y: x.relu(), lambda x, y: x.relu(), lambda x, y: np.maximum(x, 0)),
    "sum": (lambda x, y: x.sum(), lambda x, y: x.sum(), lambda x, y: x.sum()),
    "matmul": (lambda x, y: x @ y, lambda x, y: x @ y, lambda x, y: x @ y),
    "reshape": (lambda x, y: x.reshape(-1), lambda x, y: x.reshape(-1), lambda x, y: x.reshape(-1)),
    "transpose": (lambda x, y: x.T, lambda x, y: x.T, lambda x, y: x.T),
    "getitem": (lambda x, y: x[1:3], lambda x, y: x[1:3], lambda x, y: x[1:3]),
    "softmax": (lambda x, y: F.softmax(x, -1), lambda x, y: torch.softmax(x, -1), numpy_softmax),
}


def constant_for(name: str, y: np.ndarray) -> np.ndarray:
    return y[:1] if "broadcast" in name else y


def check(name: str, x: np.ndarray, y: np.ndarray) -> None:
    """Assert that the op gives NumPy's forward and PyTorch's gradient before it is timed."""
    ours, theirs, reference = OPS[name]
    y = constant_for(name, y)
    tx, ty = tl.tensor(x, requires_grad=True), tl.tensor(y)
    px, py = torch.tensor(x, requires_grad=True), torch.tensor(y)
    out, torch_out = ours(tx, ty), theirs(px, py)
    np.testing.assert_allclose(out.numpy(), reference(x, y), rtol=1e-6, atol=1e-6)
    out.sum().backward()
    torch_out.sum().backward()
    np.testing.assert_allclose(tx.grad.numpy(), px.grad.numpy(), rtol=1e-6, atol=1e-6)


def time_op(name: str, x: np.ndarray, y: np.ndarray, inner: int, repeat: int) -> dict[str, float]:
    """Return median seconds per call: forward of NumPy, PyTorch and tinyllm; forward+backward of
    PyTorch and tinyllm (backward of `op(x).sum()`, the input needing grad as in training)."""
    ours, theirs, reference = OPS[name]
    y = constant_for(name, y)
    tx, ty = tl.tensor(x, requires_grad=True), tl.tensor(y)
    px, py = torch.tensor(x, requires_grad=True), torch.tensor(y)

    def ours_forward_backward():
        tx.grad = None
        ours(tx, ty).sum().backward()

    def theirs_forward_backward():
        px.grad = None
        theirs(px, py).sum().backward()

    timings = {
        "numpy": measure(lambda: reference(x, y), inner=inner, repeat=repeat),
        "torch": measure(lambda: theirs(px, py), inner=inner, repeat=repeat),
        "tinyllm": measure(lambda: ours(tx, ty), inner=inner, repeat=repeat),
        "torch fwd+bwd": measure(theirs_forward_backward, inner=max(inner // 10, 1), repeat=repeat),
        "tinyllm fwd+bwd": measure(ours_forward_backward, inner=max(inner // 10, 1), repeat=repeat),
    }
    return {key: t.median for key, t in timings.items()} | {"spread": timings["tinyllm"].spread()}


def plot(results: dict[str, dict[str, float]], shape: tuple) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    series = ["numpy", "torch", "tinyllm", "torch fwd+bwd", "tinyllm fwd+bwd"]
    fig, ax = plt.subplots(figsize=(12, 4.5))
    width = 0.8 / len(series)
    for i, key in enumerate(series):
        xs = [j + (i - len(series) / 2 + 0.5) * width for j in range(len(names))]
        ax.bar(xs, [results[n][key] * 1e6 for n in names], width, label=key)
    ax.axhline(GOAL_SECONDS * 1e6, color="black", linestyle="--", linewidth=1, label="goal: 2 µs forward")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("µs per call (median)")
    ax.set_yscale("log")
    ax.set_title(f"per-op overhead on {shape} float32 arrays")
    ax.set_ylim(top=ax.get_ylim()[1] * 30)  # room above the bars for the legend (a log axis)
    ax.legend(fontsize=8, ncol=6, loc="upper center")
    save_plot(fig, "bench_overhead")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=2, default=[4, 4])
    parser.add_argument("--inner", type=int, default=2000, help="calls per timed run")
    parser.add_argument("--repeat", type=int, default=9, help="timed runs per op (median reported)")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)

    print(machine_header())
    rng = np.random.default_rng(0)
    shape = tuple(args.shape)
    x = rng.standard_normal(shape).astype(np.float32)
    y = (rng.random((shape[1], shape[1])) + 0.5).astype(np.float32)
    for name in OPS:
        check(name, x, y)
    print(f"all {len(OPS)} ops match NumPy (forward) and PyTorch (gradient)\n")

    results = {name: time_op(name, x, y, args.inner, args.repeat) for name in OPS}
    rows = []
    for name, r in results.items():
        rows.append([
            name, r["numpy"] * 1e6, r["torch"] * 1e6, r["tinyllm"] * 1e6, r["tinyllm"] / r["numpy"],
            r["tinyllm"] / r["torch"], r["torch fwd+bwd"] * 1e6, r["tinyllm fwd+bwd"] * 1e6,
            r["tinyllm fwd+bwd"] / r["torch fwd+bwd"], r["spread"],
        ])  # fmt: skip
    print_table(
        ["op", "numpy µs", "torch µs", "tinyllm µs", "/numpy", "/torch", "torch f+b µs", "tinyllm f+b µs", "/torch",
         "spread"],
        rows,
        title=f"forward (input requires grad) and forward+backward of op(x).sum(), x {shape} float32; median "
        f"of {args.repeat} runs of {args.inner} calls",
    )  # fmt: skip
    forward = sorted(r["tinyllm"] for r in results.values())
    overhead = sorted(r["tinyllm"] - r["numpy"] for r in results.values())
    print(
        f"\ntinyllm forward: median {forward[len(forward) // 2] * 1e6:.2f} µs per op "
        f"(bookkeeping over NumPy: median {overhead[len(overhead) // 2] * 1e6:.2f} µs); "
        f"goal {GOAL_SECONDS * 1e6:.0f} µs; ops over the goal: "
        f"{', '.join(n for n, r in results.items() if r['tinyllm'] > GOAL_SECONDS) or 'none'}"
    )
    if not args.no_plot:
        plot(results, shape)


if __name__ == "__main__":
    main()
