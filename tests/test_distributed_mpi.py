"""Data-parallel training on real MPI ranks (`mpiexec -n 2` and `-n 4`, the mpiexec of the mpich
wheel): N ranks end with the parameters of one process on the same global batches, a checkpoint
resumes on another number of ranks, a failed or killed rank ends the job quickly with a message
naming it, and a signal to mpiexec stops every rank with a checkpoint saved.

The runs are in distributed_program.py; one process's reference runs here, in-process.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from distributed_program import HALF, SCENARIOS, TEXT, train

from tinyllm.io import has_checkpoint, load_checkpoint
from tinyllm.train import load_trained

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = Path(__file__).resolve().parent / "distributed_program.py"
TOLERANCE = {"float64": 1e-6, "float32": 1e-5}
FOUR_RANK_SCENARIOS = ("float64-zero-accum-clip", "float32-accum-clip")


def mpiexec() -> str:
    beside_python = Path(sys.executable).with_name("mpiexec")
    found = str(beside_python) if beside_python.exists() else shutil.which("mpiexec")
    assert found, "no mpiexec: pip install mpi4py mpich (the [mpi] extra)"
    return found


def environment() -> dict:
    """One BLAS/Numba thread per rank (4 ranks share 2 cores); MPICH polls with pauses when idle."""
    path = os.pathsep.join([str(ROOT), str(PROGRAM.parent), os.environ.get("PYTHONPATH", "")])
    threads = {
        name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
    }
    return os.environ | threads | {"PYTHONPATH": path, "MPIR_CVAR_CH4_PROGRESS_THROTTLE": "1"}


def launch(n: int, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [mpiexec(), "-n", str(n), sys.executable, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=environment(),
        timeout=timeout,
        cwd=ROOT,
    )


def start(n: int, *args: str) -> subprocess.Popen:
    """Start mpiexec with SIGINT at its default: a shell's background job would pass it on ignored."""
    return subprocess.Popen(
        [mpiexec(), "-n", str(n), sys.executable, *args],
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment(),
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The output folder of `-n 2 equivalence` followed by `-n 4 resume` (which also reruns two scenarios)."""
    out = tmp_path_factory.mktemp("mpi")
    for n, scenario in ((2, "equivalence"), (4, "resume")):
        done = launch(n, str(PROGRAM), scenario, str(out / f"n{n}" if scenario == "equivalence" else out / "n4"))
        assert done.returncode == 0, done.stdout + done.stderr
        if scenario == "equivalence":  # the four ranks continue the two ranks' half-way checkpoint
            shutil.copytree(out / "n2" / "resumed", out / "n4" / "resumed")
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """name -> the one-process Trainer after the same run, with plain AdamW (never ZeRO)."""
    out = tmp_path_factory.mktemp("one-process")
    plain = {name: {k: v for k, v in options.items() if k != "zero"} for name, options in SCENARIOS.items()}
    trainers = {name: train(out / name, **options) for name, options in plain.items()}
    trainers["resumed"] = train(out / "resumed", **HALF)
    return trainers


def assert_same_training(folder: Path, trainer, tolerance: float) -> None:
    checkpoint = load_checkpoint(folder)
    assert checkpoint.step == trainer.step == 20
    for name, value in trainer.model.state_dict().items():
        np.testing.assert_allclose(checkpoint.weights[name], value, rtol=0, atol=tolerance, err_msg=name)
    expected = trainer.optimizer.state_dict()["state"]
    for index, moments in expected.items():
        for moment in ("exp_avg", "exp_avg_sq"):
            got = checkpoint.optimizer["state"][index][moment]
            np.testing.assert_allclose(got, moments[moment], rtol=0, atol=tolerance, err_msg=f"{index} {moment}")


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_two_ranks_end_with_the_parameters_of_one_process(runs, reference, name):
    assert_same_training(runs / "n2" / name, reference[name], TOLERANCE[SCENARIOS[name]["dtype"]])


@pytest.mark.parametrize("name", FOUR_RANK_SCENARIOS)
def test_four_ranks_end_with_the_parameters_of_one_process(runs, reference, name):
    assert_same_training(runs / "n4" / name, reference[name], TOLERANCE[SCENARIOS[name]["dtype"]])


def test_a_two_rank_checkpoint_resumes_exactly_on_four_ranks_with_zero1(runs, reference):
    assert_same_training(runs / "n4" / "resumed", reference["resumed"], 1e-12)


def test_only_rank_0_logs_and_clipping_was_active(runs):
    records = [line for line in (runs / "n2" / "float64-accum-clip" / "log.jsonl").read_text().splitlines()]
    steps = [int(re.search(r'"step": (\d+)', line).group(1)) for line in records if '"kind": "train"' in line]
    assert steps == list(range(1, 21))  # each step once: no second rank wrote
    norms = [float(n) for n in re.findall(r'"grad_norm": ([0-9.e+-]+)', "\n".join(records))]
    assert len(norms) == 20 and sum(norm > 0.05 for norm in norms) >= 10  # the clip at 0.05 did act


def test_a_rank_that_raises_ends_all_four_within_seconds_naming_it(tmp_path):
    started = time.time()
    done = launch(4, str(PROGRAM), "fail", str(tmp_path), timeout=120)
    ended = time.time()
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "rank 1 of 4 stopped with RuntimeError: deliberate failure at step 5" in output, output
    failed_at = float(re.search(r"failed at ([0-9.]+)", output).group(1))
    assert started < failed_at and ended - failed_at < 10
    assert load_checkpoint(tmp_path / "failed").step == 4  # the last one written (every 2 steps) is intact


def cli_train(out: Path, *flags: str) -> tuple:
    data = out.parent / "text.txt"
    data.write_text(TEXT)
    small = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8", "--batch-size", "4"]
    rest = ["--eval-iters", "1", "--no-progress", "--sample-tokens", "0", "--max-iters", "100000"]
    return ("-m", "tinyllm", "train", "--data", str(data), "--out", str(out), *small, *rest, *flags)


def rank_pid(out: Path, rank: int) -> int:
    """Return the process id of the given rank of the job writing to out (from its environment)."""
    for entry in Path("/proc").iterdir():
        try:
            if str(out) in (entry / "cmdline").read_text() and f"\0PMI_RANK={rank}\0" in (
                "\0" + (entry / "environ").read_text()
            ):
                return int(entry.name)
        except (OSError, ValueError):
            continue
    raise AssertionError(f"no rank {rank} is running for {out}")


def wait_for(condition, job: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert job.poll() is None, job.stdout.read()
        assert time.time() < deadline, "the job did not get there in time"
        time.sleep(0.2)


def test_a_killed_rank_ends_the_job_within_10_s_and_the_last_checkpoint_loads(tmp_path):
    out = tmp_path / "run"
    job = start(2, *cli_train(out, "--checkpoint-interval", "5", "--eval-interval", "100000"))
    try:
        wait_for(lambda: has_checkpoint(out), job)
        victim = rank_pid(out, 1)
        os.kill(victim, signal.SIGKILL)
        killed = time.time()
        output = job.communicate(timeout=30)[0]
        assert time.time() - killed < 10
    finally:
        job.kill()
    assert job.returncode != 0
    assert f"1: pid {victim} on" in output  # the start line maps the process to its rank
    # mpiexec names the first rank it saw end: the victim, or on a busy machine the other rank,
    # which it killed while cleaning up
    ranks = re.findall(r"\d+: pid (\d+) on", output.splitlines()[0])  # the start line's rank: pid pairs
    assert len(ranks) == 2 and str(victim) in ranks
    assert "BAD TERMINATION" in output and any(f"PID {pid}" in output for pid in ranks), output
    model, tokenizer, checkpoint = load_trained(out)
    assert checkpoint.step % 5 == 0 and checkpoint.step >= 5 and model.num_parameters() > 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["kill", "ctrl-c"])
def test_a_signal_to_mpiexec_stops_every_rank_after_the_same_step_with_a_checkpoint(tmp_path, signum):
    out = tmp_path / "run"
    job = start(2, *cli_train(out, "--checkpoint-interval", "100000", "--eval-interval", "100000"))
    try:
        lines = []
        wait_for(lambda: lines.append(job.stdout.readline()) or "step 0:" in lines[-1], job)
        time.sleep(1.0)
        job.send_signal(signum)
        output = "".join(lines) + job.communicate(timeout=60)[0]
    finally:
        job.kill()
    stopped = re.search(r"interrupted at step (\d+), checkpoint saved", output)
    assert stopped, output
    assert load_checkpoint(out).step == int(stopped.group(1)) > 0
