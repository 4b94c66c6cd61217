"""Shared benchmark plumbing: the machine header, a timer, processes run in turn, a table printer
and plot saving.

Every benchmark first checks its result against a reference, then times with `measure` after a
warm-up (JIT compile time is measured separately by `time_once`), and prints `machine_header()`
so that a table always says on which CPU, BLAS and thread count it was measured, and how loaded
the machine was (`load_line`).

Libraries compared with each other run in separate processes, taken in turn (A B A B ...) by
`alternate`: PyTorch's OpenMP threads spin after its work and slow Numba's and OpenBLAS's threads
in the same process, and the turns make every side see the same stretches of machine load.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine_header() -> str:
    """Return lines naming the CPU, core count, Python, NumPy, BLAS and its threads."""
    import numpy as np

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    lines = [
        f"machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}",
        f"python {platform.python_version()}, numpy {np.__version__}",
    ]
    try:
        import numba

        lines[-1] += f", numba {numba.__version__} (threads {numba.get_num_threads()})"
    except ImportError:
        pass
    try:
        import torch

        lines[-1] += f", torch {torch.__version__} (threads {torch.get_num_threads()})"
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            if pool.get("user_api") == "blas":
                lines.append(
                    f"BLAS: {pool.get('internal_api')} {pool.get('version')} "
                    f"({pool.get('architecture')}), {pool.get('num_threads')} threads, {pool.get('filepath', '').split('/')[-1]}"
                )
    except ImportError:
        lines.append("BLAS: unknown (pip install threadpoolctl)")
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    lines.append(f"OPENBLAS_CORETYPE={coretype or '(unset)'}; {load_line()} at the start")
    return "\n".join(lines)


def load_line() -> str:
    """Return the 1-minute load average against the core count: above the core count the machine
    was shared with other work while the benchmark ran, and absolute times are inflated."""
    load = os.getloadavg()[0]
    shared = " (shared machine: other work was running)" if load > 1.2 * (os.cpu_count() or 1) else ""
    return f"load average {load:.1f} on {os.cpu_count()} cores{shared}"


def set_threads(threads: int | None) -> None:
    """Limit BLAS, Numba and (if imported) torch to `threads` threads; None leaves them. BLAS is
    left single-threaded in a process that `tune_for_training()` made so (its products then run
    on Numba's threads)."""
    if not threads:
        return
    from threadpoolctl import threadpool_limits

    from tinyllm.kernels import runtime

    if not runtime.blas_on_numba_threads():
        threadpool_limits(threads)
    try:
        import numba

        numba.set_num_threads(threads)
    except ImportError:
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


RESULT_MARK = "BENCH-RESULT "


def report(result: dict) -> None:
    """Print a worker process's result (samples in seconds and anything else) for `alternate`."""
    print(RESULT_MARK + json.dumps(result), flush=True)


def alternate(script: str, workers: list[str], rounds: int, extra_args: list[str] = ()) -> dict[str, dict]:
    """Return {worker: {field: value}} from running `python script --worker NAME *extra_args` for
    each worker in turn, `rounds` times (A B A B ...): one process per run; list fields (samples)
    are joined over the runs, other fields kept from the last run."""
    results: dict[str, dict] = {name: {} for name in workers}
    for round_index in range(rounds):
        for name in workers:
            command = [sys.executable, script, "--worker", name, *extra_args]
            done = subprocess.run(command, capture_output=True, text=True)
            lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
            if done.returncode != 0 or not lines:
                raise RuntimeError(f"worker {name!r} failed (round {round_index}):\n{done.stdout}\n{done.stderr}")
            for key, value in json.loads(lines[-1][len(RESULT_MARK) :]).items():
                joined = isinstance(value, list) and key in results[name]
                results[name][key] = results[name][key] + value if joined else value
    return results


def summarize(samples: list[float]) -> Timing:
    """Return the median, min and max of samples (seconds)."""
    return Timing(statistics.median(samples), min(samples), max(samples), len(samples))


@dataclass
class Timing:
    median: float
    low: float
    high: float
    runs: int

    def spread(self) -> float:
        """Return (high - low) / median: how noisy the runs were."""
        return (self.high - self.low) / self.median if self.median else 0.0


def time_once(fn) -> float:
    """Return the seconds one call of fn takes (used for JIT compile time)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(fn, warmup: int = 2, repeat: int = 7, min_time: float = 0.0, inner: int = 1) -> Timing:
    """Return the median, min and max seconds per call of fn over `repeat` runs after `warmup`.

    Each run calls fn `inner` times (for sub-microsecond work) and reports the mean of those.
    """
    for _ in range(warmup):
        fn()
    samples = []
    started = time.perf_counter()
    while len(samples) < repeat or time.perf_counter() - started < min_time:
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return Timing(statistics.median(samples), min(samples), max(samples), len(samples))


def print_table(headers: list[str], rows: list[list], title: str | None = None) -> str:
    """Print rows as an aligned text table (and return it)."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    if title:
        lines.append(title)
    lines.append("  ".join(h.rjust(w) for h, w in zip(cells[0], widths)))
    lines.append("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        lines.append("  ".join(c.rjust(w) for c, w in zip(row, widths)))
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def _fmt(value) -> str:
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    return str(value)


def save_plot(fig, name: str) -> Path:
    """Save a matplotlib figure as benchmarks/results/<name>.png and return the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    fig.text(0.0, -0.04, f"{load_line()} when the plot was written", fontsize=7, color="gray")
    path = RESULTS_DIR / f"{name}.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"plot written to {path}")
    return path
