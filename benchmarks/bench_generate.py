"""SmolLM2-135M generation speed on the CPU: tinyllm (float32, and decoding from the quantized
blocks) vs transformers (fp32), each in its own process.

    python benchmarks/bench_generate.py [--rounds 3] [--prompt-tokens 64] [--new-tokens 32]
        [--threads N] [--profile]

All load the same GGUF file (SmolLM2-135M-Instruct.Q4_1.gguf). transformers and tinyllm's
default model dequantize it to float32; `Llama.from_gguf(path, quantized=True)` also keeps the
Q4_1/Q8_0 blocks and decodes from them (nn/quantized.py). Each engine runs in its own process,
the processes taken in turn (`--rounds` times). Before timing, the transformers process checks
prefill logits within 1e-3 and identical greedy tokens against tinyllm, and the quantized process
checks its greedy tokens against tinyllm's float32 ones. With `tinyllm[mkl]` installed, a fourth
engine runs tinyllm float32 with MKL's matmul (`kernels.use(matmul="mkl")`), checked the same way
against the default (OpenBLAS) one. Then:
- prefill: one forward pass over the prompt, tokens/s = prompt tokens / time;
- decode with the KV cache: greedy steps of one token after a prefill (prefill not timed);
- decode without a cache: each step runs the whole sequence so far.
Decode at batch 1 is a chain of (1, C) @ (C, N) matrix-vector products (about 540 MB of float32
weights read per token, the 49152 x 576 output head included, ~100 MB of blocks), so it is bound
by memory bandwidth plus the per-op overhead of some 30 ops per layer x 30 layers. `--profile`
prints tinyllm's time per op class for one decode step.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import alternate, load_line, machine_header, print_table, report, save_plot, set_threads  # noqa: E402

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
TEXT = (
    "The history of the city begins with a small settlement on the river, where traders met to exchange "
    "salt, grain and wool. Over the centuries the town grew into a market, then a fortress, and finally "
    "a capital whose bridges, churches and libraries still draw visitors from around the world. "
)


ENGINES = ["tinyllm", "tinyllm (quantized decode)", "transformers"]
MKL_ENGINE = "tinyllm (MKL matmul)"  # float32 with kernels.use(matmul="mkl"), when tinyllm[mkl] is installed


def load_tinyllm(directory: Path, quantized: bool = False):
    from tinyllm.models.llama import Llama

    return Llama.from_gguf(directory / GGUF_NAME, quantized=quantized)


def load_transformers(directory: Path):
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()
    return AutoModelForCausalLM.from_pretrained(directory, gguf_file=GGUF_NAME, dtype=torch.float32).eval()


class TinyllmRunner:
    name = "tinyllm"

    def __init__(self, model, matmul: str = "auto") -> None:
        self.model, self.matmul = model, matmul

    def prefill(self, ids: list[int], use_cache: bool = True):
        import tinyllm as tl
        from tinyllm import kernels

        with tl.no_grad(), kernels.use(matmul=self.matmul):
            cache = self.model.new_cache() if use_cache else None
            logits = self.model(tl.tensor([ids]), cache=cache).numpy()[0]  # (T, V)
        return logits, cache

    def step(self, token: int, cache):
        import tinyllm as tl
        from tinyllm import kernels

        with tl.no_grad(), kernels.use(matmul=self.matmul):
            return self.model(tl.tensor([[token]]), cache=cache).numpy()[0, -1]  # (V,)

    def full(self, ids: list[int]):
        import tinyllm as tl
        from tinyllm import kernels

        with tl.no_grad(), kernels.use(matmul=self.matmul):
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


def time_prefill(runner, ids, repeat: int) -> list[float]:
    """Return the seconds of `repeat` prefills after a warm-up."""
    runner.prefill(ids)
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        runner.prefill(ids)
        samples.append(time.perf_counter() - start)
    return samples


def time_decode(runner, ids, new_tokens: int, repeat: int) -> list[float]:
    """Return the seconds per cached decode step (greedy, prefill not timed) of `repeat` runs."""
    samples = []
    for _ in range(repeat + 1):
        logits, cache = runner.prefill(ids)
        token = int(np.argmax(logits[-1]))
        start = time.perf_counter()
        for _ in range(new_tokens):
            token = int(np.argmax(runner.step(token, cache)))
        samples.append((time.perf_counter() - start) / new_tokens)
    return samples[1:]


def time_decode_without_cache(runner, ids, new_tokens: int) -> list[float]:
    """Return the mean seconds per step when each step recomputes the whole sequence."""
    sequence = list(ids)
    runner.full(sequence)
    start = time.perf_counter()
    for _ in range(new_tokens):
        sequence.append(int(np.argmax(runner.full(sequence))))
    return [(time.perf_counter() - start) / new_tokens]


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


def run_worker(engine: str, args) -> None:
    """Check one engine, then time it in this process and report its samples."""
    from tinyllm.hub import download
    from tinyllm.kernels import tune_for_inference

    tune_for_inference()  # what the CLI's sample and chat do: the allocator policy, fast-waking Numba threads
    if engine == MKL_ENGINE:
        from tinyllm.kernels import matmul_mkl

        matmul_mkl.load()  # loaded before set_threads, so that its thread count is set too
    directory = download("smollm2", quiet=True)
    start = time.perf_counter()
    if engine == "transformers":
        model = load_transformers(directory)
        runner = TransformersRunner(model)
    else:
        model = load_tinyllm(directory, quantized=engine == "tinyllm (quantized decode)")
        runner = TinyllmRunner(model, matmul="mkl" if engine == MKL_ENGINE else "auto")
    load_s = time.perf_counter() - start
    set_threads(args.threads)
    reference = TinyllmRunner(load_tinyllm(directory)) if engine != "tinyllm" else None
    tokenizer = (reference or runner).model.tokenizer
    ids = (tokenizer.encode(TEXT) * 8)[: args.prompt_tokens]
    check = ""
    if reference is not None:  # correctness first: the same greedy tokens (and logits) as tinyllm fp32
        difference = float(np.abs(runner.prefill(ids)[0] - reference.prefill(ids)[0]).max())
        same = greedy(runner, ids, 8) == greedy(reference, ids, 8)
        check = (
            f"{engine} vs tinyllm fp32: prefill logits max |difference| {difference:.2e}, greedy tokens equal: {same}"
        )
        if difference > 1e-3 or not same:
            raise SystemExit(f"{check}; not timing")
        del reference
    report(
        {
            "prefill": time_prefill(runner, ids, args.repeat),
            "decode": time_decode(runner, ids, args.new_tokens, args.repeat),
            "uncached": time_decode_without_cache(runner, ids, args.no_cache_tokens),
            "load_s": load_s,
            "prompt": len(ids),
            "check": check,
        }
    )
    if args.profile and engine != "transformers":
        profile_decode_step(model, ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="processes per engine, taken in turn")
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--no-cache-tokens", type=int, default=8, help="steps timed without a KV cache")
    parser.add_argument("--repeat", type=int, default=3, help="timed prefills and decodes per process")
    parser.add_argument("--threads", type=int, default=None, help="BLAS, Numba and torch threads (default: as set)")
    parser.add_argument("--profile", action="store_true", help="print tinyllm's time per op of a decode step")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        import torch  # noqa: F401  (imported first, so that set_threads limits it too)

        run_worker(args.worker, args)
        return

    print(machine_header())
    extra = [
        f"--{k.replace('_', '-')}={v}"
        for k, v in vars(args).items()
        if k not in ("rounds", "worker", "profile") and v is not None
    ]
    from tinyllm.kernels import matmul_mkl

    engines = ENGINES + ([MKL_ENGINE] if matmul_mkl.available() else [])
    results = alternate(__file__, engines, args.rounds, extra)
    for engine in engines:
        if results[engine]["check"]:
            print("check: " + results[engine]["check"])
    prompt = results["tinyllm"]["prompt"]
    speeds = {
        engine: (
            prompt / statistics.median(result["prefill"]),
            1 / statistics.median(result["decode"]),
            1 / statistics.median(result["uncached"]),
        )
        for engine, result in results.items()
    }
    base = speeds["transformers"]
    rows = []
    for index, mode in enumerate(["prefill", "decode, KV cache", "decode, no cache"]):
        for engine in engines:
            speed = speeds[engine][index]
            per_call = 1e3 / speed * (prompt if index == 0 else 1)
            rows.append([mode, engine, speed, per_call, speed / base[index]])
    print_table(
        ["phase", "engine", "tokens/s", "ms per call", "x transformers"],
        rows,
        title=f"\nSmolLM2-135M, batch 1, prompt {prompt} tokens, {args.new_tokens} cached / "
        f"{args.no_cache_tokens} uncached decode steps: medians over {args.rounds} processes per engine "
        f"x {args.repeat} runs, processes alternated; {load_line()} at the end",
    )
    loads = ", ".join(f"{engine} {results[engine]['load_s']:.1f} s" for engine in engines)
    print(f"load from GGUF (last process): {loads}")
    if args.profile:
        subprocess.run([sys.executable, __file__, "--worker", "tinyllm (quantized decode)", *extra, "--profile"])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    colors = ["tab:blue", "tab:green", "tab:orange", "tab:purple"][: len(engines)]
    for index, (axis, title) in enumerate(zip(axes, ["prefill", "decode (KV cache)", "decode (no cache)"])):
        values = [speeds[engine][index] for engine in engines]
        axis.bar([e.replace(" (", "\n(") for e in engines], values, color=colors)
        for position, value in enumerate(values):
            axis.text(position, value, f"{value / base[index]:.2f}x", ha="center", va="bottom", fontsize=8)
        axis.set_title(title)
        axis.set_ylabel("tokens/s")
        axis.tick_params(axis="x", labelsize=8)
    fig.suptitle("SmolLM2-135M on the CPU, batch 1 (ratios: x transformers fp32)", y=1.04)
    save_plot(fig, "bench_generate")


if __name__ == "__main__":
    main()
