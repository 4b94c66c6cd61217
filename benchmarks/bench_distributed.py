"""Data-parallel training on MPI: measured tokens/s at 1, 2 and 4 ranks, Allreduce time against
message size with a fitted latency + bandwidth, and from those a model of 1-64 nodes.

    flock /tmp/tinyllm-bench.lock python benchmarks/bench_distributed.py [--steps 15]

Part 1, training throughput: the `shakespeare-char` GPT (n_layer 4, n_head 4, n_embd 128, block
64, vocab 65) trained by `Trainer` under `mpiexec -n N` with 12 sequences per rank (weak scaling:
the global `--batch-size` is 12 N), one BLAS/Numba thread per rank, with and without ZeRO-1.
Before timing, every rank's parameters are checked to be identical after the warm-up steps.

Part 2, `Allreduce` (in place, float32 sum) of 1 KiB to 64 MiB on 2 and 4 ranks; the ring model
t = 2 (N - 1) alpha + 2 (N - 1) / N * bytes / bandwidth is fitted to each (least squares on
relative error), alpha being the latency of one message.

Part 3, a model of N = 1..64 nodes, one rank per node: step time = compute (measured at 1 rank,
scaled by 6 * params * tokens for the 124M model) + the all-reduce time of the gradient buckets
(4 MiB each, as `DataParallel`) that backward (2/3 of compute) cannot hide. Without overlap all
of it shows; with overlap only what exceeds backward, and at least the last bucket. The network:
this machine's shared memory (the fit of part 2) and, as stated assumptions, 10 Gb/s Ethernet
(alpha 20 us, 1.1 GB/s) and 100 Gb/s InfiniBand (alpha 2 us, 11 GB/s). The compute: this engine
(its FLOP rate measured at 1 rank, also for 124M) and, assumed, a 100 TFLOP/s accelerator node.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine_header, print_table, save_plot  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PRESET = dict(block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0)
ROWS_PER_RANK = 12
BUCKET_BYTES = 4 * 2**20
GPT2_SMALL = dict(params=124e6, tokens_per_node=8 * 1024)  # 8 sequences of 1024 tokens per node
ACCELERATOR_FLOPS = 100e12  # an assumed GPU-class node, to show where the network starts to matter
NETWORKS = {  # name: (alpha seconds, bytes per second); None: the fit of this machine
    "this machine (shared memory, fitted)": None,
    "10 Gb/s Ethernet (assumed)": (20e-6, 1.1e9),
    "100 Gb/s InfiniBand (assumed)": (2e-6, 11e9),
}


# -- workers: run under mpiexec ----------------------------------------------------------------------
def train_worker(steps: int, zero: int) -> None:
    from tinyllm import distributed
    from tinyllm.backend import np as tnp
    from tinyllm.data import Corpus, load_text
    from tinyllm.models import GPT, GPTConfig
    from tinyllm.tokenizers import CharTokenizer
    from tinyllm.train import TrainConfig, Trainer

    comm = distributed.init()
    text = load_text(None)
    tokenizer = CharTokenizer.from_text(text)
    corpus = Corpus.from_text(text, tokenizer, 0.1, block_size=PRESET["block_size"])
    config = TrainConfig(batch_size=ROWS_PER_RANK * comm.world_size, max_iters=10**6, eval_iters=1, zero=zero)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, **PRESET))
    trainer = Trainer(model, tokenizer, corpus, config, progress=False, comm=comm)
    for _ in range(3):
        trainer.train_step()
    flat = tnp.concatenate([p.numpy().ravel() for p in model.parameters()]).astype(tnp.float64)
    mean = flat.copy()
    comm.allreduce_mean_(mean)
    identical = float(tnp.max(tnp.abs(mean - flat)))
    comm.barrier()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        trainer.train_step()
        times.append(time.perf_counter() - started)
    step_s = tnp.array([float(tnp.median(times))])
    comm.allreduce_mean_(step_s)  # the ranks step together: their medians differ little
    if comm.is_main:
        record = {"ranks": comm.world_size, "zero": zero, "step_s": float(step_s[0]), "params": model.num_parameters()}
        print(
            json.dumps(record | {"replica_difference": identical, "tokens": config.batch_size * PRESET["block_size"]})
        )
    comm.close()


def allreduce_worker() -> None:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    for power in range(8, 25, 2):  # 256 .. 16M floats: 1 KiB .. 64 MiB
        buffer = np.zeros(2**power, dtype=np.float32)  # zeros: sums stay zeros, never overflow
        repeat = max(3, min(200, 2**22 // buffer.nbytes))
        comm.Allreduce(MPI.IN_PLACE, buffer)
        rounds = []
        for _ in range(3):
            comm.Barrier()
            started = time.perf_counter()
            for _ in range(repeat):
                comm.Allreduce(MPI.IN_PLACE, buffer)
            rounds.append(comm.allreduce((time.perf_counter() - started) / repeat, op=MPI.MAX))
        check = np.ones(4, dtype=np.float32)
        comm.Allreduce(MPI.IN_PLACE, check)
        assert np.all(check == comm.Get_size())
        if comm.Get_rank() == 0:
            print(json.dumps({"ranks": comm.Get_size(), "bytes": buffer.nbytes, "seconds": float(np.median(rounds))}))


# -- the driver ------------------------------------------------------------------------------------
def launch(ranks: int, *args: str) -> list[dict]:
    """Run this file under mpiexec -n ranks with one thread per rank; return the JSON lines rank 0 printed."""
    mpiexec = Path(sys.executable).with_name("mpiexec")
    threads = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
    env = os.environ | threads | {"PYTHONPATH": str(ROOT)}
    command = [str(mpiexec if mpiexec.exists() else "mpiexec"), "-n", str(ranks), sys.executable, __file__, *args]
    done = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def fit_ring(points: list[dict]) -> tuple[float, float]:
    """Return (alpha, bandwidth) of t = 2 (N-1) alpha + 2 (N-1)/N bytes / bandwidth, least squares on relative error."""
    n = points[0]["ranks"]
    t = np.array([p["seconds"] for p in points])
    design = np.stack([np.full(len(t), 2 * (n - 1)), 2 * (n - 1) / n * np.array([p["bytes"] for p in points])], axis=1)
    (alpha, inverse_bandwidth), *_ = np.linalg.lstsq(design / t[:, None], np.ones(len(t)), rcond=None)
    return float(alpha), float(1 / inverse_bandwidth)


def allreduce_seconds(nodes: np.ndarray, nbytes: float, alpha: float, bandwidth: float) -> np.ndarray:
    return np.where(nodes > 1, 2 * (nodes - 1) * alpha + 2 * (nodes - 1) / nodes * nbytes / bandwidth, 0.0)


def modelled_step(nodes, params: float, compute_s: float, alpha: float, bandwidth: float, overlap: bool):
    """Return the seconds of one step on each node count: compute plus the exposed all-reduce of float32 buckets."""
    nbytes = 4 * params
    n_buckets = math.ceil(nbytes / BUCKET_BYTES)
    last = nbytes - (n_buckets - 1) * BUCKET_BYTES
    comm = sum(
        allreduce_seconds(nodes, min(BUCKET_BYTES, nbytes - i * BUCKET_BYTES), alpha, bandwidth)
        for i in range(n_buckets)
    )
    if not overlap:
        return compute_s + comm
    exposed = np.maximum(comm - 2 / 3 * compute_s, allreduce_seconds(nodes, last, alpha, bandwidth))
    return compute_s + exposed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15, help="timed training steps per run")
    parser.add_argument("--worker", choices=["train", "allreduce"], help=argparse.SUPPRESS)
    parser.add_argument("--zero", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "train":
        return train_worker(args.steps, args.zero)
    if args.worker == "allreduce":
        return allreduce_worker()

    print(machine_header())
    print(f"mpiexec: {Path(sys.executable).with_name('mpiexec')}; 1 BLAS/Numba thread per rank")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"note: a shared machine (load average {load} at the start); 4 ranks on 2 cores are oversubscribed\n")
    runs = [
        launch(n, "--worker", "train", "--steps", str(args.steps), "--zero", str(z))[0]
        for z in (0, 1)
        for n in (1, 2, 4)
    ]
    for run in runs:
        assert run["replica_difference"] == 0.0, f"replicas differ after warm-up: {run}"
    base = {run["zero"]: run["step_s"] / run["tokens"] for run in runs if run["ranks"] == 1}
    print_table(
        ["ranks", "ZeRO", "global batch", "ms/step", "tokens/s", "speed-up", "efficiency"],
        [
            [r["ranks"], r["zero"], r["tokens"] // PRESET["block_size"], 1000 * r["step_s"], r["tokens"] / r["step_s"],
             base[r["zero"]] * r["tokens"] / r["step_s"], base[r["zero"]] * r["tokens"] / r["step_s"] / r["ranks"]]
            for r in runs
        ],
        title=f"GPT shakespeare-char ({runs[0]['params']:,} parameters), {ROWS_PER_RANK} x 64 tokens per rank; "
        "replicas identical after warm-up",
    )  # fmt: skip

    fits = {}
    for n in (2, 4):
        points = launch(n, "--worker", "allreduce")
        fits[n] = fit_ring(points)
        alpha, bandwidth = fits[n]
        print()
        print_table(
            ["bytes", "measured us", "model us", "GB/s (algorithm)"],
            [
                [p["bytes"], 1e6 * p["seconds"], 1e6 * float(allreduce_seconds(np.array(n), p["bytes"], alpha, bandwidth)),
                 p["bytes"] / p["seconds"] / 1e9]
                for p in points
            ],
            title=f"MPI Allreduce on {n} ranks: fitted alpha {1e6 * alpha:.2f} us per message, bandwidth {bandwidth / 1e9:.2f} GB/s",
        )  # fmt: skip

    one = next(r for r in runs if r["ranks"] == 1 and r["zero"] == 0)
    flops = 6 * one["params"] * one["tokens"] / one["step_s"]
    big, big_tokens = GPT2_SMALL["params"], GPT2_SMALL["tokens_per_node"]
    models = {  # name: (parameters, compute seconds per step, tokens per node per step)
        f"GPT preset ({one['params'] / 1e6:.2f}M), this engine": (one["params"], one["step_s"], one["tokens"]),
        "124M, this engine": (big, 6 * big * big_tokens / flops, big_tokens),
        f"124M, {ACCELERATOR_FLOPS / 1e12:.0f} TFLOP/s node (assumed)": (
            big, 6 * big * big_tokens / ACCELERATOR_FLOPS, big_tokens
        ),
    }  # fmt: skip
    print(
        f"\ncompute per node: this engine {flops / 1e9:.1f} GFLOP/s measured at 1 rank (6 * params * tokens / "
        f"step time), assumed the same for 124M; the accelerator's {ACCELERATOR_FLOPS / 1e12:.0f} TFLOP/s is assumed"
    )
    nodes = np.array([1, 2, 4, 8, 16, 32, 64])
    networks = {name: value or fits[2] for name, value in NETWORKS.items()}
    rows = []
    for model_name, (params, compute_s, _) in models.items():
        for network, (alpha, bandwidth) in networks.items():
            for overlap in (False, True):
                step = modelled_step(nodes, params, compute_s, alpha, bandwidth, overlap)
                rows.append([model_name, network.split(" (")[0], "yes" if overlap else "no"]
                            + [f"{e:.0%}" for e in compute_s / step])  # fmt: skip
    print()
    print_table(["model", "network", "overlap"] + [f"N={n}" for n in nodes], rows, title="modelled efficiency")
    plot(models, networks, runs)


def plot(models, networks, runs) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, (throughput, efficiency) = plt.subplots(1, 2, figsize=(14, 5.5))
    colors = dict(zip(networks, ["tab:blue", "tab:orange", "tab:green"]))
    styles = dict(zip(models, ["-", "--", "-."]))
    nodes = np.unique(np.round(np.logspace(0, math.log10(64), 60)))
    for model_name, (params, compute_s, tokens) in models.items():
        for network, (alpha, bandwidth) in networks.items():
            step = modelled_step(nodes, params, compute_s, alpha, bandwidth, overlap=True)
            throughput.plot(nodes, nodes * tokens / step, styles[model_name], color=colors[network])
            efficiency.plot(nodes, compute_s / step, styles[model_name], color=colors[network])
            if model_name == list(models)[-1]:
                no_overlap = modelled_step(nodes, params, compute_s, alpha, bandwidth, overlap=False)
                efficiency.plot(nodes, compute_s / no_overlap, ":", color=colors[network], lw=1.2)
    measured = [r for r in runs if r["zero"] == 0]
    ranks = [r["ranks"] for r in measured]
    one = measured[0]["step_s"] / measured[0]["tokens"]
    throughput.plot(ranks, [r["tokens"] / r["step_s"] for r in measured], "ks", ms=7)
    efficiency.plot(ranks, [one * r["tokens"] / r["step_s"] / r["ranks"] for r in measured], "ks", ms=7)
    for rank, record in zip(ranks, measured):
        throughput.annotate(f"{record['tokens'] / record['step_s']:.0f}", (rank, record["tokens"] / record["step_s"]),
                            textcoords="offset points", xytext=(6, -12), fontsize=8)  # fmt: skip
    for axis in (throughput, efficiency):
        axis.set_xscale("log", base=2)
        axis.set_xticks([1, 2, 4, 8, 16, 32, 64], labels=["1", "2", "4", "8", "16", "32", "64"])
        axis.set_xlabel("nodes (one rank each; tokens per node per step fixed)")
        axis.grid(True, which="both", alpha=0.3)
    throughput.set_yscale("log")
    throughput.set_ylabel("tokens / s")
    throughput.set_title("modelled throughput (ring all-reduce, 4 MiB buckets, overlapped)")
    efficiency.set_ylabel("parallel efficiency = compute / step time")
    efficiency.set_ylim(0, 1.05)
    efficiency.set_title("modelled efficiency (dotted: the accelerator node without overlap)")
    handles = [Line2D([], [], color=c, label=n) for n, c in colors.items()]
    handles += [Line2D([], [], color="k", ls=st, label=m) for m, st in styles.items()]
    handles += [
        Line2D([], [], color="k", marker="s", ls="", label="measured here: GPT preset, ranks on 2 shared cores")
    ]
    fig.legend(handles=handles, fontsize=9, loc="lower center", ncol=3, bbox_to_anchor=(0.5, -0.13))
    save_plot(fig, "bench_distributed")


if __name__ == "__main__":
    main()
