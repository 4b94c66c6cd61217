"""`tinyllm train` killed with SIGKILL at random moments, checkpoint writes included, five times:
each time the latest checkpoint loads, the run resumes bit-exactly (the same final weights as a
run never killed), and nothing in the folder that tinyllm did not write is touched.

A terminal's output is checked too: off a terminal, one log line per interval and no progress-bar
frames.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinyllm.io import has_checkpoint, load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
STEPS = 24
MODEL = ["--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "32"]  # a fresh run only
FLAGS = [
    "--batch-size",
    "4",
    "--eval-interval",
    "12",
    "--eval-iters",
    "1",
    "--log-interval",
    "4",
    "--checkpoint-interval",
    "1",
]
FLAGS += ["--max-iters", str(STEPS), "--sample-tokens", "0", "--seed", "5"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "verse.txt"
    path.write_text("Shall I compare thee to a summer's day?\nThou art more lovely and more temperate:\n" * 60)
    return path


def train_process(out: Path, corpus: Path, *extra: str) -> subprocess.Popen:
    """Start `tinyllm train` on corpus into out: resuming if out holds a checkpoint, else afresh."""
    model_or_resume = ["--resume"] if has_checkpoint(out) else MODEL
    command = [sys.executable, "-m", "tinyllm", "train", "--out", str(out), "--data", str(corpus), *FLAGS]
    command += [*model_or_resume, *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def user_files(out: Path) -> dict:
    """Files a user keeps in the run folder, some named like tinyllm's own; returns {path: bytes}."""
    files = {
        out / "step-plan" / "notes.md": b"what to try next\n",
        out / "notes.txt": b"run started by hand\n",
        out / "step-000001-0badf00d" / "model.safetensors": b"not ours: no manifest ever named this folder\n",
        out / ".manifest.json.keep.tmp.bak": b"a name close to a temporary manifest's\n",
    }
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def checkpoint_step(out: Path) -> int:
    """Return the step of the checkpoint the folder's manifest names (0 before the first)."""
    try:
        folder = json.loads((out / "manifest.json").read_text())["folder"]  # step-000012-<hash>
    except FileNotFoundError:
        return 0
    return int(folder.split("-")[1])


def final_weights(out: Path) -> dict:
    checkpoint = load_checkpoint(out)
    assert checkpoint.step == STEPS
    return checkpoint.weights


def test_training_killed_five_times_resumes_bit_exactly_and_touches_nothing_else(corpus, tmp_path):
    reference = train_process(tmp_path / "reference", corpus, "--no-progress")
    out = tmp_path / "killed"
    mine = user_files(out)
    rng = random.Random(13)
    kills = 0
    steps_seen = []
    while kills < 5:
        process = train_process(out, corpus, "--no-progress")
        first_line = process.stderr.readline()
        assert first_line.startswith("training "), first_line + process.communicate()[1]
        # kill one to three steps into this run, at a random moment of a step (its checkpoint write
        # included): counted in steps, not seconds, so that a fast machine does not finish first
        start = checkpoint_step(out)
        target = start + rng.randint(1, 3)
        while process.poll() is None and checkpoint_step(out) < target:
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.05))
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGKILL)
        process.communicate()
        kills += 1
        if has_checkpoint(out):
            checkpoint = load_checkpoint(out)  # the latest checkpoint always loads
            steps_seen.append(checkpoint.step)
        for path, data in mine.items():
            assert path.read_bytes() == data, f"{path} was changed"
    assert kills == 5, f"training ended before the fifth kill (killed {kills} times at steps {steps_seen})"
    finish = train_process(out, corpus, "--no-progress")
    _, errors = finish.communicate(timeout=300)
    assert finish.returncode == 0, errors
    _, errors = reference.communicate(timeout=300)
    assert reference.returncode == 0, errors
    expected, resumed = final_weights(tmp_path / "reference"), final_weights(out)
    assert expected.keys() == resumed.keys()
    for name in expected:
        assert np.array_equal(expected[name], resumed[name]), f"{name} differs after resume"
    for path, data in mine.items():
        assert path.read_bytes() == data, f"{path} was changed"
    leftovers = sorted(p.name for p in out.iterdir() if p.name.startswith(".") and p.name not in {n.name for n in mine})
    assert leftovers == [], f"crashed saves left {leftovers}"
    current = json.loads((out / "manifest.json").read_text())["folder"]
    folders = sorted(p.name for p in out.iterdir() if p.name.startswith("step-"))
    assert folders == sorted([current, "step-000001-0badf00d", "step-plan"]), "an old step folder stayed"


def test_off_a_terminal_training_logs_one_line_per_interval_and_no_bar_frames(corpus, tmp_path):
    process = train_process(tmp_path / "run", corpus)  # progress on, but stderr is a pipe
    _, errors = process.communicate(timeout=300)
    assert process.returncode == 0, errors
    assert "\r" not in errors
    lines = [line for line in errors.splitlines() if line.startswith("step ") and "/" in line.split(":")[0]]
    assert [line.split(":")[0] for line in lines] == [f"step {s}/{STEPS}" for s in range(4, STEPS + 1, 4)]
    assert "validation set: the last 10% of" in errors
