"""GPT training step and generation: tinyllm (per attention kernel) vs its PyTorch twin.

    python benchmarks/bench_train.py [--rounds 4] [--iters 10] [--threads 2] [--profile]

Part 1, the training step of the `shakespeare-char` preset (n_layer 4, n_head 4, n_embd 128,
batch 12, vocab 65, dropout 0) at block 64 (the preset) and 256: forward + cross-entropy +
backward + AdamW step, ms/iteration and tokens/s, on random tokens (timing does not depend on the
text). Each implementation runs in its own process, the processes taken in turn (A B C A B C ...,
`--rounds` times, `--iters` timed steps each after a warm-up): tinyllm once per attention kernel
(the array-level reference and the fused Numba kernel, which "auto" picks at both blocks), and
the PyTorch twin (tests/torch_gpt.py) with the same config, the same
weights and the same AdamW. The twin's process first checks its logits against tinyllm's.

Part 2, generation: tokens/s sampling 256 new tokens from a 1-token prompt, with and without the
KV cache, for the preset width with a 512-token context (so that 256 tokens fit without
cropping), after checking that cached and uncached logits agree (tinyllm alone, one process).
"""

# ruff: noqa: N803, N806 - B, T: the field's names for tensor sizes (the house convention for model code)

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

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
    time_once,
)

PRESET = dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0)
BATCH = 12
LR, BETAS, WEIGHT_DECAY = 1e-3, (0.9, 0.99), 0.1
NEW_TOKENS = 256
BLOCKS = (64, 256)
WORKERS = {"tinyllm (reference attention)": "reference", "tinyllm (numba attention)": "numba", "pytorch (twin)": None}
MKL_WORKERS = {"tinyllm (auto attention, MKL matmul)": "auto"}  # with `tinyllm[mkl]` installed
GPU_WORKERS = {"tinyllm cuda (reference attention)": "reference", "tinyllm cuda (cuda attention)": "cuda"}


def random_batches(n: int, batch: int, block: int, vocab: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        ids = rng.integers(0, vocab, size=(batch, block + 1))
        out.append((ids[:, :-1], ids[:, 1:]))
    return out


def tinyllm_step(model, batches, device: str = "cpu"):
    """Return a function that runs one training step of tinyllm on the next batch."""
    import tinyllm as tl
    import tinyllm.nn.functional as F
    from tinyllm.optim import AdamW, weight_decay_groups

    optimizer = AdamW(weight_decay_groups(model, WEIGHT_DECAY), lr=LR, betas=BETAS)
    data = [(tl.tensor(x, device=device), tl.tensor(y.reshape(-1), device=device)) for x, y in batches]
    position = [0]

    def step():
        x, y = data[position[0] % len(data)]
        position[0] += 1
        optimizer.zero_grad()
        logits = model(x)  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y)
        loss.backward()
        optimizer.step()
        return loss

    return step


def torch_step(twin, batches):
    import torch
    from torch_gpt import adamw_groups, lm_loss

    optimizer = torch.optim.AdamW(adamw_groups(twin, WEIGHT_DECAY), lr=LR, betas=BETAS)
    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]
    position = [0]

    def step():
        x, y = data[position[0] % len(data)]
        position[0] += 1
        optimizer.zero_grad(set_to_none=True)
        loss = lm_loss(twin(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return step


def run_worker(name: str, block: int, iters: int) -> None:
    """Time `iters` training steps of one implementation in this process and report the samples."""
    import time

    import torch
    from torch_gpt import TorchGPT

    import tinyllm as tl
    from tinyllm import kernels
    from tinyllm.models import GPT, GPTConfig

    if name in MKL_WORKERS:  # MKL keeps its own threads: the process tuned as without the one pool
        os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
    tuning = kernels.tune_for_training()
    config = GPTConfig(**{**PRESET, "block_size": block})
    batches = random_batches(8, BATCH, block, config.vocab_size)
    tl.manual_seed(0)
    model = GPT(config)
    attention = {**WORKERS, **MKL_WORKERS, **GPU_WORKERS}[name]
    matmul = "mkl" if name in MKL_WORKERS else None
    device = "cuda" if name in GPU_WORKERS else "cpu"
    if attention is None:
        twin = TorchGPT(config)
        twin.load_tinyllm_state(model.state_dict())
        with tl.no_grad(), kernels.use(attention="reference"):
            expected = model(tl.tensor(batches[0][0])).numpy()
        error = float(np.abs(twin(torch.from_numpy(batches[0][0])).detach().numpy() - expected).max())
        assert error < 1e-4, f"the torch twin's logits differ from tinyllm's by {error}"
        del model
        step, compile_s = torch_step(twin, batches), 0.0
        run = lambda: step().item()  # noqa: E731
    else:
        model.to(device)
        with kernels.use(attention=attention, matmul=matmul):
            compile_s = time_once(lambda: model(tl.tensor(batches[0][0], device=device)).numpy())
        step = tinyllm_step(model, batches, device)
        error = 0.0

        def run():
            with kernels.use(attention=attention, matmul=matmul):
                return step().item()

    for _ in range(3):
        run()
    samples = []
    for _ in range(iters):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    q = np.zeros((BATCH, PRESET["n_head"], block, PRESET["n_embd"] // PRESET["n_head"]), np.float32)
    auto = kernels.choose("attention", q, q)
    auto_name = next(name for name, module in kernels.FAMILIES["attention"].items() if module is auto)
    report({"samples": samples, "compile_s": compile_s, "error": error, "auto": auto_name, "tuning": tuning})


def bench_training(rounds: int, iters: int, threads: int | None) -> dict[int, list[list]]:
    """Return {block: table rows} of the training step, each implementation in its own process."""
    tables = {}
    extra = ["--iters", str(iters)] + (["--threads", str(threads)] if threads else [])
    import tinyllm as tl
    from tinyllm.kernels import matmul_mkl

    workers = {**WORKERS, **(MKL_WORKERS if matmul_mkl.available() else {})}
    workers |= GPU_WORKERS if tl.cuda_is_available() else {}
    for block in BLOCKS:
        results = alternate(__file__, list(workers), rounds, extra + ["--block", str(block)])
        timings = {name: summarize(result["samples"]) for name, result in results.items()}
        baseline = timings["pytorch (twin)"]
        auto = results["tinyllm (reference attention)"]["auto"]
        if block == BLOCKS[0]:
            tuning = {name: result["tuning"] for name, result in results.items() if name != "pytorch (twin)"}
            print("each worker tuned by tune_for_training(): " + "; ".join(f"{n}: {t}" for n, t in tuning.items()))
        rows = []
        for name, timing in timings.items():
            label = name + (" = auto" if name in WORKERS and WORKERS[name] == auto else "")
            rows.append(
                [
                    label,
                    timing.median * 1e3,
                    timing.low * 1e3,
                    f"{timing.spread():.0%}",
                    BATCH * block / timing.median,
                    timing.median / baseline.median,
                    results[name]["compile_s"],
                ]
            )
        print_table(
            ["implementation", "ms/iter", "best ms", "spread", "tokens/s", "time vs torch", "first call s"],
            rows,
            title=f"\ntraining step (fwd + bwd + AdamW), preset {PRESET | {'block_size': block}}, batch {BATCH}: "
            f"{threads or 'default'} threads, median and best of {rounds} processes x {iters} steps each, processes "
            f"alternated; {load_line()} at the end",
        )
        tables[block] = rows
    return tables


def op_breakdown(repeat: int) -> list[list]:
    """Return rows (op, ms per training step, share) of tinyllm's step, per Function class and
    direction: each op's time is the minimum over `repeat` steps (robust to a busy machine)."""
    import time
    from collections import defaultdict

    import tinyllm as tl
    from tinyllm.autograd.function import Function
    from tinyllm.models import GPT, GPTConfig

    config = GPTConfig(**PRESET)
    tl.manual_seed(0)
    step = tinyllm_step(GPT(config), random_batches(8, BATCH, config.block_size, config.vocab_size))
    step()
    spent = defaultdict(float)

    def timed(name, method):
        def wrapper(self, *args, **kwargs):
            start = time.perf_counter()
            out = method(self, *args, **kwargs)
            spent[name] += time.perf_counter() - start
            return out

        return wrapper

    classes, stack = [], list(Function.__subclasses__())
    while stack:
        cls = stack.pop()
        classes.append(cls)
        stack.extend(cls.__subclasses__())
    originals = {cls: (cls.__dict__.get("forward"), cls.__dict__.get("backward")) for cls in classes}
    for cls, (forward, backward) in originals.items():
        if forward is not None:
            cls.forward = timed(f"{cls.__name__} forward", forward)
        if backward is not None:
            cls.backward = timed(f"{cls.__name__} backward", backward)
    best, totals = {}, []
    try:
        for _ in range(repeat):
            spent.clear()
            start = time.perf_counter()
            step()
            totals.append(time.perf_counter() - start)
            for name, seconds in spent.items():
                best[name] = min(best.get(name, seconds), seconds)
    finally:
        for cls, (forward, backward) in originals.items():
            if forward is not None:
                cls.forward = forward
            if backward is not None:
                cls.backward = backward
    total = min(totals)
    rows = [[name, seconds * 1e3, f"{seconds / total:.0%}"] for name, seconds in best.items()]
    rows.sort(key=lambda row: -row[1])
    in_ops = sum(best.values())
    rows.append(["(outside ops: graph walk, Python, optimizer)", (total - in_ops) * 1e3, f"{1 - in_ops / total:.0%}"])
    print_table(
        ["op", "ms per step", "share"],
        rows,
        title=f"\nwhere tinyllm's training step spends its time (default kernels), fastest step {total * 1e3:.1f} ms",
    )
    return rows


def bench_generation(repeat: int) -> list[list]:
    import tinyllm as tl
    from tinyllm.models import GPT, GPTConfig

    config = GPTConfig(**{**PRESET, "block_size": 512})
    tl.manual_seed(0)
    model = GPT(config)
    model.eval()
    ids = np.random.default_rng(1).integers(0, config.vocab_size, size=(1, 64))
    with tl.no_grad():
        whole = model(tl.tensor(ids)).numpy()
        cache = model.new_cache(1)
        stepped = [model(tl.tensor(ids[:, :32]), cache=cache).numpy()]
        stepped += [model(tl.tensor(ids[:, t : t + 1]), cache=cache).numpy() for t in range(32, 64)]
    error = float(np.abs(np.concatenate(stepped, axis=1) - whole).max())
    assert error < 1e-4, f"cached logits differ from uncached ones by {error}"

    runs = {
        use_cache: (lambda c=use_cache: model.generate([0], NEW_TOKENS, seed=0, use_cache=c))
        for use_cache in (True, False)
    }
    timings = {use_cache: measure(run, warmup=1, repeat=repeat) for use_cache, run in runs.items()}
    rows, rates = [], {}
    for use_cache, timing in timings.items():
        rates[use_cache] = NEW_TOKENS / timing.median
        rows.append(
            [
                "with KV cache" if use_cache else "without cache",
                timing.median,
                f"{timing.spread():.0%}",
                rates[use_cache],
            ]
        )
    rows[0].append(rates[True] / rates[False])
    rows[1].append(1.0)
    print_table(
        ["generation", "s per 256 tokens", "spread", "tokens/s", "speed-up"],
        rows,
        title=f"\ngeneration of {NEW_TOKENS} tokens, batch 1, preset width with block_size 512, median of {repeat} "
        f"(max |cached - uncached logits| {error:.1e})",
    )
    return rows


def plot(tables: dict[int, list[list]], gen_rows: list[list]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tables) + 1, figsize=(5 * (len(tables) + 1), 4))
    for ax, (block, rows) in zip(axes, tables.items()):
        names = [row[0].replace(" attention", "\nattention") for row in rows]
        positions = np.arange(len(names))
        ax.barh(positions - 0.2, [row[1] for row in rows], height=0.4, color="tab:blue", label="median")
        ax.barh(positions + 0.2, [row[2] for row in rows], height=0.4, color="tab:orange", label="best")
        for position, row in zip(positions, rows):
            ax.text(row[1], position - 0.2, f" {row[5]:.2f}x torch", va="center", fontsize=8)
        ax.set_yticks(positions, names, fontsize=8)
        ax.set_xlim(0, 1.25 * max(row[1] for row in rows))  # room for the ratio labels
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8)
        ax.set_xlabel("ms per training iteration (lower is better)")
        ax.set_title(f"GPT preset, block {block}, batch {BATCH}")
        ax.invert_yaxis()
    right = axes[-1]
    right.bar([row[0] for row in gen_rows], [row[3] for row in gen_rows], color=["tab:green", "tab:gray"])
    right.set_ylabel("tokens/s (higher is better)")
    right.set_title(f"tinyllm generating {NEW_TOKENS} tokens")
    fig.tight_layout()
    save_plot(fig, "bench_train")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="processes per implementation, taken in turn")
    parser.add_argument("--iters", type=int, default=10, help="timed training steps per process")
    parser.add_argument("--gen-repeat", type=int, default=3, help="timed generations per setting")
    parser.add_argument("--threads", type=int, default=None, help="threads for BLAS, Numba and torch")
    parser.add_argument("--profile", action="store_true", help="also print the time per op of tinyllm's step")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--block", type=int, default=64, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "profile":  # a fresh process, as the timed ones: none of the parent's threads and libraries
        from tinyllm.kernels import tune_for_training

        set_threads(args.threads)
        tune_for_training()
        op_breakdown(args.iters)
        return
    if args.worker:
        import torch  # noqa: F401  (imported first, so that set_threads limits it too)

        if args.worker in MKL_WORKERS:
            from tinyllm.kernels import matmul_mkl

            matmul_mkl.load()  # loaded first, so that set_threads limits it too
        set_threads(args.threads)
        run_worker(args.worker, args.block, args.iters)
        return
    print(machine_header())
    tables = bench_training(args.rounds, args.iters, args.threads)
    from tinyllm.kernels import tune_for_training

    tune_for_training()
    set_threads(args.threads)
    if args.profile:
        sys.stdout.flush()  # the tables above, before the profile's process prints its own
        threads = ["--threads", str(args.threads)] if args.threads else []
        subprocess.run(
            [sys.executable, __file__, "--worker", "profile", "--iters", str(args.iters), *threads], check=True
        )
    gen_rows = bench_generation(args.gen_repeat)
    plot(tables, gen_rows)


if __name__ == "__main__":
    main()
