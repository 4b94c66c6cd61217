"""Shared benchmark plumbing: the machine header, a timer, a table printer and plot saving.

Every benchmark first checks its result against a reference, then times with `measure` after a
warm-up (JIT compile time is measured separately by `time_once`), and prints `machine_header()`
so that a table always says on which CPU, BLAS and thread count it was measured.
"""

from __future__ import annotations

import os
import platform
import statistics
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
    lines.append(f"OPENBLAS_CORETYPE={coretype or '(unset)'}")
    return "\n".join(lines)


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
    path = RESULTS_DIR / f"{name}.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"plot written to {path}")
    return path
