"""MiniLM (BERT, 6 layers, 384 wide) forward and forward+backward on a batch of 32 sentences:
tinyllm vs transformers' BertModel on PyTorch, with 1 and 2 BLAS / torch threads.

    flock /tmp/tinyllm-bench.lock python benchmarks/bench_bert.py [--repeat 5]

The batch is the first 32 sentences of the VADER training split, padded to the longest. Before
timing, tinyllm's last_hidden_state is checked against transformers' (1e-4). The backward pass
is that of sum(hidden^2) over unpadded positions, in eval mode (no dropout), so both sides do
the same work. Then one tinyllm forward+backward is profiled and the ops that take the most
self time are printed: the engine's hot spots.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine_header, measure, print_table, save_plot  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import torch
    from threadpoolctl import threadpool_limits
    from transformers import BertModel

    import tinyllm as tl
    from tinyllm.data.sentiment import load_sentiment
    from tinyllm.hub import download
    from tinyllm.models import BERT

    print(machine_header())
    directory = download("minilm", quiet=True)
    model = BERT.from_pretrained(directory)
    reference = BertModel.from_pretrained(str(directory)).eval()
    texts = load_sentiment()[0].texts[:32]
    batch = model.tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="np")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    print(f"batch: {ids.shape[0]} sentences padded to {ids.shape[1]} tokens ({int(mask.sum())} real)")
    torch_ids, torch_mask = torch.tensor(ids), torch.tensor(mask)

    with tl.no_grad():
        ours = model(ids, attention_mask=mask).last_hidden_state.numpy()
    with torch.no_grad():
        theirs = reference(input_ids=torch_ids, attention_mask=torch_mask).last_hidden_state.numpy()
    error = float(np.abs(ours - theirs).max())
    assert error < 1e-4, f"tinyllm and transformers disagree by {error}"
    print(f"check: max |tinyllm - transformers| = {error:.2e}")

    weights = tl.tensor(mask[:, :, None].astype(np.float32))

    def tinyllm_forward():
        with tl.no_grad():
            model(ids, attention_mask=mask)

    def tinyllm_step():
        hidden = model(ids, attention_mask=mask).last_hidden_state
        (hidden * hidden * weights).sum().backward()
        model.zero_grad()

    torch_weights = torch_mask[:, :, None].float()

    def torch_forward():
        with torch.no_grad():
            reference(input_ids=torch_ids, attention_mask=torch_mask)

    def torch_step():
        hidden = reference(input_ids=torch_ids, attention_mask=torch_mask).last_hidden_state
        (hidden * hidden * torch_weights).sum().backward()
        reference.zero_grad()

    rows, results = [], {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        with threadpool_limits(limits=threads, user_api="blas"):
            for name, fn in (
                ("tinyllm forward", tinyllm_forward),
                ("torch forward", torch_forward),
                ("tinyllm forward+backward", tinyllm_step),
                ("torch forward+backward", torch_step),
            ):
                results[name, threads] = measure(fn, warmup=1, repeat=args.repeat)
    for (name, threads), timing in results.items():
        baseline = results[name.replace("tinyllm", "torch"), threads].median
        rows.append([name, threads, timing.median * 1e3, f"{timing.spread():.0%}", f"{timing.median / baseline:.2f}x"])
    print_table(["what", "threads", "median ms", "spread", "vs torch"], rows, title="MiniLM, batch of 32 sentences")

    with threadpool_limits(limits=1, user_api="blas"):
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
    labels = [f"{name}\n{threads} thr" for (name, threads) in results]
    ax.barh(labels, [timing.median * 1e3 for timing in results.values()])
    ax.set_xlabel("ms per call (median)")
    ax.set_title("MiniLM on a batch of 32 sentences")
    save_plot(fig, "bert_minilm_batch32")


if __name__ == "__main__":
    main()
