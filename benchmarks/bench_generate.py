"""SmolLM2-135M generation speed on the CPU: tinyllm vs transformers (fp32), side by side.

    flock /tmp/tinyllm-bench.lock python benchmarks/bench_generate.py [--prompt-tokens 64]
        [--new-tokens 32] [--threads N] [--profile]

Both engines load the same GGUF file (SmolLM2-135M-Instruct.Q4_1.gguf, dequantized to float32).
First the results are checked: prefill logits within 1e-3 and identical greedy tokens. Then:
- prefill: one forward pass over the prompt, tokens/s = prompt tokens / time;
- decode with the KV cache: greedy steps of one token after a prefill (prefill not timed);
- decode without a cache: each step runs the whole sequence so far.
Decode at batch 1 is a chain of (1, C) @ (C, N) matrix-vector products (about 540 MB of float32
weights read per token, the 49152 x 576 output head included), so it is bound by memory
bandwidth plus the per-op overhead of some 30 ops per layer x 30 layers. `--profile` prints
tinyllm's time per op class for one decode step.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import machine_header, print_table, save_plot  # noqa: E402

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
TEXT = (
    "The history of the city begins with a small settlement on the river, where traders met to exchange "
    "salt, grain and wool. Over the centuries the town grew into a market, then a fortress, and finally "
    "a capital whose bridges, churches and libraries still draw visitors from around the world. "
)


def load_models(directory: Path):
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    from tinyllm.models.llama import Llama

    logging.disable_progress_bar()
    logging.set_verbosity_error()
    start = time.perf_counter()
    ours = Llama.from_gguf(directory / GGUF_NAME)
    ours_load = time.perf_counter() - start
    start = time.perf_counter()
    theirs = AutoModelForCausalLM.from_pretrained(directory, gguf_file=GGUF_NAME, dtype=torch.float32).eval()
    theirs_load = time.perf_counter() - start
    return ours, theirs, ours_load, theirs_load


class TinyllmRunner:
    name = "tinyllm"

    def __init__(self, model) -> None:
        self.model = model

    def prefill(self, ids: list[int], use_cache: bool = True):
        import tinyllm as tl

        with tl.no_grad():
            cache = self.model.new_cache() if use_cache else None
            logits = self.model(tl.tensor([ids]), cache=cache).numpy()[0]  # (T, V)
        return logits, cache

    def step(self, token: int, cache):
        import tinyllm as tl

        with tl.no_grad():
            return self.model(tl.tensor([[token]]), cache=cache).numpy()[0, -1]  # (V,)

    def full(self, ids: list[int]):
        import tinyllm as tl

        with tl.no_grad():
            return self.model(tl.tensor([ids])).numpy()[0, -1]  # (V,)


class TransformersRunner:
    name = "transformers"

    def __init__(self, model) -> None:
        self.model = model

    def prefill(self, ids: list[int], use_cache: bool = True):
        import torch

        with torch.no_grad():
            out = self.model(torch.tensor([ids]), use_cache=use_cache)
        return out.logits[0].numpy(), out.past_key_values

    def step(self, token: int, cache):
        import torch

        with torch.no_grad():
            out = self.model(torch.tensor([[token]]), past_key_values=cache, use_cache=True)
        return out.logits[0, -1].numpy()

    def full(self, ids: list[int]):
        import torch

        with torch.no_grad():
            return self.model(torch.tensor([ids]), use_cache=False).logits[0, -1].numpy()


def greedy(runner, ids: list[int], new_tokens: int) -> list[int]:
    logits, cache = runner.prefill(ids)
    out = [int(np.argmax(logits[-1]))]
    for _ in range(new_tokens - 1):
        out.append(int(np.argmax(runner.step(out[-1], cache))))
    return out


def time_prefill(runner, ids, repeat: int) -> float:
    runner.prefill(ids)
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        runner.prefill(ids)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def time_decode(runner, ids, new_tokens: int, repeat: int) -> float:
    """Return the median seconds per cached decode step (greedy, prefill not timed)."""
    samples = []
    for _ in range(repeat + 1):
        logits, cache = runner.prefill(ids)
        token = int(np.argmax(logits[-1]))
        start = time.perf_counter()
        for _ in range(new_tokens):
            token = int(np.argmax(runner.step(token, cache)))
        samples.append((time.perf_counter() - start) / new_tokens)
    return statistics.median(samples[1:])


def time_decode_without_cache(runner, ids, new_tokens: int) -> float:
    """Return the mean seconds per step when each step recomputes the whole sequence."""
    sequence = list(ids)
    runner.full(sequence)
    start = time.perf_counter()
    for _ in range(new_tokens):
        sequence.append(int(np.argmax(runner.full(sequence))))
    return (time.perf_counter() - start) / new_tokens


def profile_decode_step(model, ids) -> None:
    """Print tinyllm's time per op class for one cached decode step (mean of 10)."""
    import tinyllm as tl
    from tinyllm.autograd.function import Function

    runner = TinyllmRunner(model)
    _, cache = runner.prefill(ids)
    totals, calls = collections.Counter(), collections.Counter()
    original = Function.apply.__func__

    def timed(cls, *tensors, **params):
        start = time.perf_counter()
        out = original(cls, *tensors, **params)
        totals[cls.__name__] += time.perf_counter() - start
        calls[cls.__name__] += 1
        return out

    Function.apply = classmethod(timed)
    try:
        start = time.perf_counter()
        with tl.no_grad():
            for _ in range(10):
                runner.step(42, cache)
        step = (time.perf_counter() - start) / 10
    finally:
        Function.apply = classmethod(original)
    rows = [
        [name, seconds / 10 * 1e3, calls[name] // 10, seconds / calls[name] * 1e6]
        for name, seconds in totals.most_common()
    ]
    rows.append(["(outside ops)", (step - sum(totals.values()) / 10) * 1e3, "", ""])
    print_table(
        ["op", "ms/step", "calls/step", "us/call"], rows, title=f"\ntinyllm decode step profile: {step * 1e3:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--no-cache-tokens", type=int, default=8, help="steps timed without a KV cache")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="BLAS, Numba and torch threads (default: as set)")
    parser.add_argument("--profile", action="store_true", help="print tinyllm's time per op of a decode step")
    args = parser.parse_args()

    import torch
    from threadpoolctl import threadpool_limits

    from tinyllm.hub import download

    if args.threads is not None:
        import numba

        threadpool_limits(args.threads)
        torch.set_num_threads(args.threads)
        numba.set_num_threads(args.threads)
    print(machine_header())
    ours, theirs, ours_load, theirs_load = load_models(download("smollm2", quiet=True))
    print(f"load from GGUF: tinyllm {ours_load:.1f} s, transformers {theirs_load:.1f} s")
    ids = (ours.tokenizer.encode(TEXT) * 8)[: args.prompt_tokens]
    runners = [TinyllmRunner(ours), TransformersRunner(theirs)]

    # correctness first: the same logits and the same greedy tokens
    difference = np.abs(runners[0].prefill(ids)[0] - runners[1].prefill(ids)[0]).max()
    tokens = [greedy(runner, ids, 8) for runner in runners]
    print(f"check: prefill logits max |difference| {difference:.2e}; greedy tokens equal: {tokens[0] == tokens[1]}")
    if difference > 1e-3 or tokens[0] != tokens[1]:
        raise SystemExit("tinyllm and transformers disagree; not timing")

    results = {}
    for runner in runners:
        prefill = time_prefill(runner, ids, args.repeat)
        decode = time_decode(runner, ids, args.new_tokens, args.repeat)
        uncached = time_decode_without_cache(runner, ids, args.no_cache_tokens)
        results[runner.name] = (len(ids) / prefill, 1 / decode, 1 / uncached)
    base = results["transformers"]
    rows = []
    for index, mode in enumerate(["prefill", "decode, KV cache", "decode, no cache"]):
        for name, speeds in results.items():
            rows.append(
                [
                    mode,
                    name,
                    speeds[index],
                    1e3 / speeds[index] * (len(ids) if index == 0 else 1),
                    speeds[index] / base[index],
                ]
            )
    print_table(
        ["phase", "engine", "tokens/s", "ms per call", "x transformers"],
        rows,
        title=f"\nSmolLM2-135M fp32, batch 1, prompt {len(ids)} tokens, {args.new_tokens} cached / "
        f"{args.no_cache_tokens} uncached decode steps (median of {args.repeat})",
    )
    speedup = results["tinyllm"][1] / results["tinyllm"][2]
    print(f"tinyllm: KV cache speeds decoding up {speedup:.1f}x at this length")
    if args.profile:
        profile_decode_step(ours, ids)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for index, (axis, title) in enumerate(zip(axes, ["prefill", "decode (KV cache)", "decode (no cache)"])):
        names = list(results)
        axis.bar(names, [results[name][index] for name in names], color=["tab:blue", "tab:orange"])
        axis.set_title(title)
        axis.set_ylabel("tokens/s")
    fig.suptitle("SmolLM2-135M on the CPU, fp32, batch 1")
    save_plot(fig, "bench_generate")


if __name__ == "__main__":
    main()
