"""MiniLM (BERT, 6 layers, 384 wide) forward and forward+backward on a batch of 32 sentences:
tinyllm vs transformers' BertModel on PyTorch, each in its own process.

    python benchmarks/bench_bert.py [--rounds 3] [--repeat 5] [--threads N]

The batch is the first 32 sentences of the VADER training split, padded to the longest. Each
library runs in its own process, the processes taken in turn (`--rounds` times, `--repeat` timed
calls each after a warm-up). Before timing, the transformers process checks tinyllm's
last_hidden_state against its own (1e-4); with `tinyllm[mkl]` installed, a third process runs
tinyllm with MKL's matmul, checked against tinyllm with OpenBLAS. The backward pass is that of sum(hidden^2) over
unpadded positions, in eval mode (no dropout), so both sides do the same work. Then one tinyllm
forward+backward is profiled and the ops that take the most self time are printed: the engine's
hot spots.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402
    alternate,
    load_line,
    machine_header,
    measure,
    print_table,
    report,
    save_plot,
    set_threads,
    summarize,
)

WORKERS = ["tinyllm", "transformers"]
MKL_WORKER = "tinyllm (MKL matmul)"  # kernels.use(matmul="mkl"), when tinyllm[mkl] is installed


def load_batch(tokenizer):
    from tinyllm.data.sentiment import load_sentiment

    texts = load_sentiment()[0].texts[:32]
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="np")
    return batch["input_ids"], batch["attention_mask"]


def tinyllm_calls(model, ids, mask):
    """Return (forward, forward+backward) functions of tinyllm's MiniLM on the batch."""
    import tinyllm as tl

    weights = tl.tensor(mask[:, :, None].astype(np.float32))

    def forward():
        with tl.no_grad():
            model(ids, attention_mask=mask)

    def step():
        hidden = model(ids, attention_mask=mask).last_hidden_state
        (hidden * hidden * weights).sum().backward()
        model.zero_grad()

    return forward, step


def run_worker(name: str, repeat: int) -> None:
    """Time one library's forward and forward+backward in this process and report the samples."""
    import torch
    from transformers import BertModel

    import tinyllm as tl
    from tinyllm.hub import download
    from tinyllm.kernels import tune_for_training
    from tinyllm.models import BERT

    if name == MKL_WORKER:  # MKL keeps its own threads: the process tuned as without the one pool
        os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
    tune_for_training()
    directory = download("minilm", quiet=True)
    model = BERT.from_pretrained(directory)
    ids, mask = load_batch(model.tokenizer)
    if name == "tinyllm":
        forward, step = tinyllm_calls(model, ids, mask)
        check = ""
    elif name == MKL_WORKER:
        from tinyllm import kernels

        with tl.no_grad():
            ours = model(ids, attention_mask=mask).last_hidden_state.numpy()
        kernels.use(matmul="mkl")
        with tl.no_grad():
            error = float(np.abs(model(ids, attention_mask=mask).last_hidden_state.numpy() - ours).max())
        assert error < 1e-4, f"tinyllm with MKL and with OpenBLAS disagree by {error}"
        check = f"check: max |tinyllm (MKL) - tinyllm (OpenBLAS)| = {error:.2e}"
        forward, step = tinyllm_calls(model, ids, mask)
    else:
        reference = BertModel.from_pretrained(str(directory)).eval()
        torch_ids, torch_mask = torch.tensor(ids), torch.tensor(mask)
        with tl.no_grad():
            ours = model(ids, attention_mask=mask).last_hidden_state.numpy()
        with torch.no_grad():
            theirs = reference(input_ids=torch_ids, attention_mask=torch_mask).last_hidden_state.numpy()
        error = float(np.abs(ours - theirs).max())
        assert error < 1e-4, f"tinyllm and transformers disagree by {error}"
        check = f"check: max |tinyllm - transformers| = {error:.2e}"
        del model
        torch_weights = torch_mask[:, :, None].float()

        def forward():
            with torch.no_grad():
                reference(input_ids=torch_ids, attention_mask=torch_mask)

        def step():
            hidden = reference(input_ids=torch_ids, attention_mask=torch_mask).last_hidden_state
            (hidden * hidden * torch_weights).sum().backward()
            reference.zero_grad()

    timings = {what: measure(fn, warmup=1, repeat=repeat) for what, fn in (("forward", forward), ("step", step))}
    report(
        {
            "forward": [timings["forward"].median],
            "step": [timings["step"].median],
            "check": check,
            "shape": list(ids.shape),
            "real": int(mask.sum()),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="processes per library, taken in turn")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per process")
    parser.add_argument("--threads", type=int, default=None, help="BLAS, Numba and torch threads (default: as set)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        import torch  # noqa: F401  (imported first, so that set_threads limits it too)

        if args.worker == MKL_WORKER:
            from tinyllm.kernels import matmul_mkl

            matmul_mkl.load()  # loaded first, so that set_threads limits it too
        set_threads(args.threads)
        run_worker(args.worker, args.repeat)
        return

    print(machine_header())
    extra = ["--repeat", str(args.repeat)] + (["--threads", str(args.threads)] if args.threads else [])
    from tinyllm.kernels import matmul_mkl

    workers = WORKERS + ([MKL_WORKER] if matmul_mkl.available() else [])
    results = alternate(__file__, workers, args.rounds, extra)
    shape, real = results["tinyllm"]["shape"], results["tinyllm"]["real"]
    print(f"batch: {shape[0]} sentences padded to {shape[1]} tokens ({real} real)")
    for name in workers[1:]:
        print(results[name]["check"])
    rows = []
    for what, label in (("forward", "forward"), ("step", "forward+backward")):
        baseline = summarize(results["transformers"][what]).median
        for name in workers:
            timing = summarize(results[name][what])
            rows.append(
                [f"{name} {label}", timing.median * 1e3, f"{timing.spread():.0%}", f"{timing.median / baseline:.2f}x"]
            )
    threads = args.threads or "as set"
    print_table(
        ["what", "median ms", "spread", "time vs transformers"],
        rows,
        title=f"MiniLM, batch of 32 sentences, {threads} threads: medians over {args.rounds} processes per library "
        f"(each the median of {args.repeat} calls), processes alternated; {load_line()} at the end",
    )

    import tinyllm as tl  # noqa: F401
    from tinyllm.hub import download
    from tinyllm.kernels import tune_for_training
    from tinyllm.models import BERT

    tune_for_training()
    set_threads(1)
    model = BERT.from_pretrained(download("minilm", quiet=True))
    ids, mask = load_batch(model.tokenizer)
    _, tinyllm_step = tinyllm_calls(model, ids, mask)
    tinyllm_step()
    profile = cProfile.Profile()
    profile.runcall(tinyllm_step)
    stats = pstats.Stats(profile).sort_stats("tottime")
    total = sum(entry[2] for entry in stats.stats.values())
    hot = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:10]
    hot_rows = [[f"{Path(f).parent.name}/{Path(f).name}:{line}({fn})", calls, t * 1e3, f"{t / total:.0%}"]
                for (f, line, fn), (_, calls, t, _, _) in hot]  # fmt: skip
    print_table(
        ["function", "calls", "self ms", "share"], hot_rows, title="tinyllm forward+backward, 1 thread: hot spots"
    )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    colors = ["tab:blue", "tab:orange", "tab:purple"][: len(workers)] * 2
    ax.barh([row[0] for row in rows], [row[1] for row in rows], color=colors)
    for position, row in enumerate(rows):
        ax.text(row[1], position, f" {row[3]}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ms per call (median; ratio: time vs transformers)")
    ax.set_title(f"MiniLM on a batch of 32 sentences, {threads} threads")
    save_plot(fig, "bert_minilm_batch32")


if __name__ == "__main__":
    main()
