"""The training log: one JSON object per line (train steps and evaluations), and its loss-curve PNG."""

from __future__ import annotations

import json
import os
from pathlib import Path


class JsonlLog:
    """Append-only JSONL file of records like {"kind": "train"|"eval", "step": n, ...}."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def write(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def read(self) -> list[dict]:
        """Return every record (a half-written last line, from a crash, is skipped)."""
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    def truncate_after(self, step: int) -> None:
        """Drop the records of steps after `step` (a resumed run logs them again)."""
        kept = [r for r in self.read() if r.get("step", 0) <= step]
        text = "".join(json.dumps(r) + "\n" for r in kept)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path)


def plot_loss_curves(curves: dict[str, tuple[list, list]], path: str | os.PathLike, title: str = "") -> Path:
    """Write a PNG of loss against step, one line per {label: (steps, losses)}; return its path.

    Uses matplotlib's Agg canvas directly (no pyplot), so it works without a display and never
    changes the backend of a program that imports tinyllm.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.2))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for label, (steps, losses) in curves.items():
        axes.plot(steps, losses, label=label, marker="o" if len(steps) < 30 else None, markersize=3)
    axes.set_xlabel("step")
    axes.set_ylabel("cross-entropy loss (nats/token)")
    if title:
        axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    path = Path(path)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    return path


def plot_log(records: list[dict], path: str | os.PathLike, title: str = "") -> Path:
    """Write the loss curve of a training log: train loss per logged step and val loss per evaluation."""
    train = [(r["step"], r["loss"]) for r in records if r.get("kind") == "train"]
    val = [(r["step"], r["val_loss"]) for r in records if r.get("kind") == "eval"]
    curves = {}
    if train:
        curves["train"] = ([s for s, _ in train], [v for _, v in train])
    if val:
        curves["val"] = ([s for s, _ in val], [v for _, v in val])
    return plot_loss_curves(curves, path, title)
