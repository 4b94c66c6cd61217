"""Convergence of the shakespeare-char preset: tinyllm against its PyTorch twin, trained the same way.

Both start from the same weights (the twin copies tinyllm's initialization), see the same batches
(two BatchSamplers with one seed), use the same AdamW groups (decay on matrices only), warmup +
cosine schedule and gradient clipping. tinyllm trains through `tinyllm.train.Trainer` itself; the
twin through a plain torch loop with torch.optim.AdamW. The validation loss is measured on the
same fixed validation batches at every evaluation, and at the end over the whole validation split.

Goal: tinyllm's validation loss <= 1.9 at 2000 iterations and within 0.03 of the twin's.

    flock /tmp/tinyllm-bench.lock python benchmarks/convergence.py [--max-iters 2000] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from torch_gpt import TorchGPT, lm_loss  # noqa: E402

import tinyllm as tl  # noqa: E402
from benchmarks.common import machine_header, print_table, save_plot  # noqa: E402
from tinyllm.data import BatchSampler, Corpus, fixed_batches, load_text, sequential_windows  # noqa: E402
from tinyllm.models import GPT, GPTConfig  # noqa: E402
from tinyllm.optim import WarmupCosine, weight_decay_groups  # noqa: E402
from tinyllm.tokenizers import CharTokenizer  # noqa: E402
from tinyllm.train import TrainConfig, Trainer, evaluate_loss  # noqa: E402

PRESET_MODEL = {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "dropout": 0.0}
GOAL_LOSS, GOAL_GAP = 1.9, 0.03


def torch_loss(twin, batches) -> float:
    """Return the token-weighted mean loss of the twin over (x, y) batches."""
    twin.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y in batches:
            total += float(lm_loss(twin(torch.from_numpy(x)), torch.from_numpy(y))) * y.size
            count += y.size
    twin.train()
    return total / count


def train_twin(twin, model, corpus, config: TrainConfig, val_batches) -> tuple[list, list, float]:
    """Train the twin as the Trainer trains tinyllm; return (eval steps, val losses, seconds)."""
    groups = [
        {"params": [dict(twin.named_parameters())[n] for n in group["names"]], "weight_decay": group["weight_decay"]}
        for group in weight_decay_groups(model, config.weight_decay)
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2), eps=1e-8)
    schedule = WarmupCosine(config.lr, config.warmup_iters, config.decay_iters, config.min_lr)
    sampler = BatchSampler(corpus.train, config.batch_size, model.config.block_size, seed=config.seed)
    steps, losses = [0], [torch_loss(twin, val_batches)]
    started = time.perf_counter()
    for step in range(config.max_iters):
        for group in optimizer.param_groups:
            group["lr"] = schedule(step)
        x, y = sampler.next()
        loss = lm_loss(twin(torch.from_numpy(x)), torch.from_numpy(y))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(twin.parameters(), config.grad_clip)
        optimizer.step()
        if (step + 1) % config.eval_interval == 0 or step + 1 == config.max_iters:
            steps.append(step + 1)
            losses.append(torch_loss(twin, val_batches))
            print(f"  twin step {step + 1}: val loss {losses[-1]:.4f}", flush=True)
    return steps, losses, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-iters", type=int, default=2000)
    parser.add_argument("--eval-interval", type=int, default=250)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (NumPy's BLAS: set OMP_NUM_THREADS)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_header())

    config = TrainConfig(max_iters=args.max_iters, eval_interval=args.eval_interval, log_interval=10)
    text = load_text()
    tokenizer = CharTokenizer.from_text(text)
    corpus = Corpus.from_text(text, tokenizer, config.val_fraction)
    tl.manual_seed(config.seed)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, **PRESET_MODEL))
    twin = TorchGPT.from_tinyllm(model)  # the same initial weights
    block = model.config.block_size
    val_batches = fixed_batches(corpus.val, config.eval_iters, config.batch_size, block, config.seed + 1)
    full_val = sequential_windows(corpus.val, 64, block)
    print(
        f"preset shakespeare-char: {model.num_parameters():,} parameters, vocab {tokenizer.vocab_size}, "
        f"{len(corpus.train):,} train / {len(corpus.val):,} val tokens, {config.max_iters} iterations",
        flush=True,
    )

    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(model, tokenizer, corpus, config, out_dir=out, progress=False)
        started = time.perf_counter()
        trainer.fit()
        ours_seconds = time.perf_counter() - started
        records = [json.loads(line) for line in (Path(out) / "log.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["kind"] == "eval"]
    ours_steps, ours_losses = [r["step"] for r in evals], [r["val_loss"] for r in evals]
    ours_full = evaluate_loss(model, full_val)

    twin_steps, twin_losses, twin_seconds = train_twin(twin, model, corpus, config, val_batches)
    twin_full = torch_loss(twin, full_val)

    gap, full_gap = ours_losses[-1] - twin_losses[-1], ours_full - twin_full
    rows = [
        [
            "tinyllm",
            f"{ours_losses[-1]:.4f}",
            f"{ours_full:.4f}",
            1000 * ours_seconds / config.max_iters,
            ours_seconds / 60,
        ],
        [
            "PyTorch twin",
            f"{twin_losses[-1]:.4f}",
            f"{twin_full:.4f}",
            1000 * twin_seconds / config.max_iters,
            twin_seconds / 60,
        ],
        ["tinyllm - twin", f"{gap:+.1e}", f"{full_gap:+.1e}", "", ""],
    ]
    print_table(
        [
            "model",
            f"val loss ({config.eval_iters} batches)",
            "val loss (full split)",
            "ms/iter (incl. eval)",
            "minutes",
        ],
        rows,
        title=f"validation loss after {config.max_iters} iterations",
    )
    reached = ours_full <= GOAL_LOSS and ours_losses[-1] <= GOAL_LOSS
    close = abs(full_gap) <= GOAL_GAP and abs(gap) <= GOAL_GAP
    print(
        f"goal val loss <= {GOAL_LOSS}: {'met' if reached else 'NOT met'}; goal |gap| <= {GOAL_GAP}: {'met' if close else 'NOT met'}"
    )

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.2))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    axes.plot(ours_steps, ours_losses, marker="o", label=f"tinyllm (final {ours_losses[-1]:.3f})")
    axes.plot(twin_steps, twin_losses, marker="s", linestyle="--", label=f"PyTorch twin (final {twin_losses[-1]:.3f})")
    axes.axhline(GOAL_LOSS, color="grey", linewidth=0.8, linestyle=":", label=f"goal {GOAL_LOSS}")
    axes.set_xlabel("iteration")
    axes.set_ylabel("validation loss (nats/char)")
    axes.set_title("shakespeare-char preset: tinyllm vs PyTorch, same init, data and optimizer")
    axes.grid(alpha=0.3)
    axes.legend()
    save_plot(figure, "convergence")
    return 0 if reached and close else 1


if __name__ == "__main__":
    sys.exit(main())
