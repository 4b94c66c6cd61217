"""GPT training step and generation: tinyllm (per attention kernel) vs its PyTorch twin.

    flock /tmp/tinyllm-bench.lock python benchmarks/bench_train.py [--iters 30] [--threads 2]

Part 1, the training step of the `shakespeare-char` preset (n_layer 4, n_head 4, n_embd 128,
block 64, batch 12, vocab 65, dropout 0): forward + cross-entropy + backward + AdamW step,
ms/iteration and tokens/s, on random tokens (timing does not depend on the text). tinyllm runs
once per attention kernel (the array-level reference and the fused Numba kernel); the PyTorch
twin (tests/torch_gpt.py) runs the same config with the same weights and the same AdamW. Before
timing, the logits of every tinyllm variant are checked against the twin's.

Part 2, generation: tokens/s sampling 256 new tokens from a 1-token prompt, with and without the
KV cache, for the preset width with a 512-token context (so that 256 tokens fit without
cropping), after checking that cached and uncached logits agree.
"""

# ruff: noqa: N803, N806 - B, T: the field's names for tensor sizes (STYLE.md)

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from benchmarks.common import Timing, machine_header, print_table, save_plot, time_once  # noqa: E402

PRESET = dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0)
BATCH = 12
LR, BETAS, WEIGHT_DECAY = 1e-3, (0.9, 0.99), 0.1
NEW_TOKENS = 256


def measure_interleaved(functions: dict, warmup: int, repeat: int, block: int = 5) -> dict:
    """Return {name: Timing} over `repeat` calls of each function, taken in rounds of `block`
    calls per function, so that all of them see the same stretches of machine load.

    Each function's block starts with one untimed call: torch's OpenMP threads and OpenBLAS's
    threads spin for a while after their work, and would otherwise slow the next block's first call.
    """
    import statistics
    import time

    for _ in range(warmup):
        for fn in functions.values():
            fn()
    samples = {name: [] for name in functions}
    while min(len(runs) for runs in samples.values()) < repeat:
        for name, fn in functions.items():
            fn()
            for _ in range(block):
                start = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - start)
    return {name: Timing(statistics.median(runs), min(runs), max(runs), len(runs)) for name, runs in samples.items()}


def random_batches(n: int, batch: int, block: int, vocab: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        ids = rng.integers(0, vocab, size=(batch, block + 1))
        out.append((ids[:, :-1], ids[:, 1:]))
    return out


def tinyllm_variants() -> list[tuple[str, str]]:
    """Return the (device, attention kernel) pairs to time: reference and Numba on the CPU, and
    reference and numba.cuda on a GPU when one is present."""
    import tinyllm as tl

    variants = [("cpu", "reference"), ("cpu", "numba")]
    if tl.cuda_is_available():
        variants += [("cuda", "reference"), ("cuda", "cuda")]
    return variants


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


def bench_training(iters: int) -> list[list]:
    import torch
    from torch_gpt import TorchGPT

    import tinyllm as tl
    from tinyllm import kernels
    from tinyllm.models import GPT, GPTConfig

    config = GPTConfig(**PRESET)
    tokens_per_iter = BATCH * config.block_size
    batches = random_batches(8, BATCH, config.block_size, config.vocab_size)
    tl.manual_seed(0)
    reference_state = GPT(config).state_dict()
    twin = TorchGPT(config)
    twin.load_tinyllm_state(reference_state)
    x0 = batches[0][0]
    expected = twin(torch.from_numpy(x0)).detach().numpy()

    steps, checks = {}, {}
    for device, kernel in tinyllm_variants():
        with kernels.use(attention=kernel):
            model = GPT(config)
            model.load_state_dict(reference_state)
            model.to(device)
            x0_device = tl.tensor(x0, device=device)
            compile_s = time_once(lambda m=model, x=x0_device: m(x).numpy())
            error = float(np.abs(model(x0_device).numpy() - expected).max())
            assert error < 1e-4, f"tinyllm ({device}, {kernel}) logits differ from the torch twin by {error}"
        name = f"tinyllm {device} ({kernel} attention)"
        steps[name] = _with_kernel(kernel, tinyllm_step(model, batches, device))
        checks[name] = (compile_s, error)
    torch_train_step = torch_step(twin, batches)
    steps["pytorch cpu (twin)"] = lambda: torch_train_step().item()
    checks["pytorch cpu (twin)"] = (0.0, 0.0)
    timings = measure_interleaved(steps, warmup=3, repeat=iters)

    baseline = timings["pytorch cpu (twin)"]
    rows = []
    for name, timing in timings.items():
        compile_s, error = checks[name]
        rows.append(
            [
                name,
                timing.median * 1e3,
                timing.low * 1e3,
                f"{timing.spread():.0%}",
                tokens_per_iter / timing.median,
                timing.median / baseline.median,
                timing.low / baseline.low,
                compile_s,
                f"{error:.1e}",
            ]
        )
    print_table(
        [
            "implementation",
            "ms/iter",
            "best ms",
            "spread",
            "tokens/s",
            "time vs torch",
            "best vs torch",
            "first call s",
            "max |dlogits|",
        ],
        rows,
        title=f"\ntraining step (fwd + bwd + AdamW), preset {PRESET}, batch {BATCH}, median and best of {iters} "
        "(implementations interleaved in blocks of 5)",
    )
    return rows


def _with_kernel(kernel: str, step):
    """Return a function running step() with the given attention kernel selected, loss synced."""
    from tinyllm import kernels

    def run():
        with kernels.use(attention=kernel):
            return step().item()

    return run


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
    timings = measure_interleaved(runs, warmup=1, repeat=repeat, block=1)
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


def plot(train_rows: list[list], gen_rows: list[list]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = [row[0] for row in train_rows]
    positions = np.arange(len(names))
    left.barh(positions - 0.2, [row[1] for row in train_rows], height=0.4, color="tab:blue", label="median")
    left.barh(positions + 0.2, [row[2] for row in train_rows], height=0.4, color="tab:orange", label="best")
    left.set_yticks(positions, names)
    left.legend()
    left.set_xlabel("ms per training iteration (lower is better)")
    left.set_title("shakespeare-char preset, batch 12")
    left.invert_yaxis()
    right.bar([row[0] for row in gen_rows], [row[3] for row in gen_rows], color=["tab:green", "tab:gray"])
    right.set_ylabel("tokens/s (higher is better)")
    right.set_title(f"generating {NEW_TOKENS} tokens")
    fig.tight_layout()
    save_plot(fig, "bench_train")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=30, help="timed training iterations per implementation")
    parser.add_argument("--gen-repeat", type=int, default=3, help="timed generations per setting")
    parser.add_argument("--threads", type=int, default=None, help="threads for BLAS, Numba and torch")
    parser.add_argument("--profile", action="store_true", help="also print the time per op of tinyllm's step")
    args = parser.parse_args()
    if args.threads:
        import numba
        import torch
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
        numba.set_num_threads(args.threads)
        torch.set_num_threads(args.threads)
    print(machine_header())
    train_rows = bench_training(args.iters)
    if args.profile:
        op_breakdown(args.iters)
    gen_rows = bench_generation(args.gen_repeat)
    plot(train_rows, gen_rows)


if __name__ == "__main__":
    main()
