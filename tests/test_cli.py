"""The `tinyllm train`, `sample` and `eval` commands, in-process and (for Ctrl-C) as a real process."""

import dataclasses
import math
import re
import signal
import subprocess
import sys
import time

import pytest

from tinyllm.cli.main import build_parser, main
from tinyllm.io import load_checkpoint
from tinyllm.models import GPTConfig
from tinyllm.train import TrainConfig

TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4"]
TINY += ["--eval-interval", "3", "--eval-iters", "2", "--log-interval", "1", "--warmup-iters", "2", "--no-progress"]


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "verse.txt"
    path.write_text("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 40)
    return path


@pytest.fixture(scope="module")
def trained(corpus_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    code = main(
        ["train", "--data", str(corpus_file), "--out", str(out), "--max-iters", "6", "--sample-tokens", "0", *TINY]
    )
    assert code == 0
    return out


def test_every_config_field_has_a_flag():
    train = build_parser("train")._subparsers._group_actions[0].choices["train"]
    flags = {s for action in train._actions for s in action.option_strings}
    for cls in (GPTConfig, TrainConfig):
        for field in dataclasses.fields(cls):
            if field.name != "vocab_size":
                assert "--" + field.name.replace("_", "-") in flags, field.name


def test_train_prints_the_val_loss_and_a_sample(corpus_file, tmp_path, capsys):
    code = main(
        [
            "train",
            "--data",
            str(corpus_file),
            "--out",
            str(tmp_path),
            "--max-iters",
            "3",
            "--sample-tokens",
            "25",
            *TINY,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert re.search(r"done at step 3: val loss \d+\.\d{4}, perplexity \d+\.\d+", out)
    sample = out.split("--- sample ---\n", 1)[1]
    assert len(sample.rstrip("\n")) >= 20
    assert load_checkpoint(tmp_path).step == 3
    assert (tmp_path / "log.jsonl").exists() and (tmp_path / "loss.png").exists()


def test_resume_continues_to_the_new_max_iters(trained, capsys):
    assert (
        main(["train", "--out", str(trained), "--resume", "--max-iters", "8", "--sample-tokens", "0", "--no-progress"])
        == 0
    )
    assert "done at step 8" in capsys.readouterr().out
    checkpoint = load_checkpoint(trained)
    assert checkpoint.step == 8 and checkpoint.state["train_config"]["max_iters"] == 8
    assert checkpoint.state["train_config"]["batch_size"] == 4


def test_train_refuses_to_overwrite_a_checkpoint_or_change_the_model_on_resume(trained, capsys):
    assert main(["train", "--out", str(trained), "--max-iters", "1", *TINY]) == 2
    assert "already holds a checkpoint" in capsys.readouterr().err
    assert main(["train", "--out", str(trained), "--resume", "--n-layer", "2"]) == 2
    assert "keeps the model of the checkpoint" in capsys.readouterr().err


def test_resume_without_a_checkpoint_is_an_error(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "nothing"), "--resume"]) == 2
    assert "CheckpointError: no checkpoint" in capsys.readouterr().err


def test_bad_corpus_files_are_data_errors(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "short.txt").write_text("tiny corpus")
    assert main(["train", "--data", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "a"), *TINY]) == 2
    assert "DataError: corpus file" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "short.txt"), "--out", str(tmp_path / "b"), *TINY]) == 2
    assert re.search(r"DataError: the corpus is too short: its train part has \d+ tokens", capsys.readouterr().err)


def test_sample_streams_max_new_tokens_after_the_prompt(trained, capsys):
    args = ["sample", "--checkpoint", str(trained), "--prompt", "To be", "--max-new-tokens", "30", "--seed", "3"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert first.startswith("To be") and len(first) == len("To be") + 30 + 1  # one token per character, newline
    assert main(args) == 0
    assert capsys.readouterr().out == first
    assert main([*args[:-2], "--temperature", "0", "--top-k", "1"]) == 0


def test_sample_with_a_character_the_tokenizer_never_saw_is_a_tokenizer_error(trained, capsys):
    assert main(["sample", "--checkpoint", str(trained), "--prompt", "Zebra"]) == 2
    assert "TokenizerError: character 'Z'" in capsys.readouterr().err


def test_eval_prints_val_loss_and_perplexity(trained, capsys):
    assert main(["eval", "--checkpoint", str(trained)]) == 0
    out = capsys.readouterr().out
    loss, ppl = map(float, re.search(r"val loss (\d+\.\d+), perplexity (\d+\.\d+)", out).groups())
    assert ppl == pytest.approx(math.exp(loss), rel=1e-3)
    assert main(["eval", "--checkpoint", str(trained), "--split", "all"]) == 0


def test_bpe_tokenizer_trains_and_samples(corpus_file, tmp_path, capsys):
    args = ["train", "--data", str(corpus_file), "--out", str(tmp_path), "--max-iters", "2", "--sample-tokens", "10"]
    assert main([*args, "--tokenizer", "bpe", "--bpe-vocab-size", "280", *TINY]) == 0
    assert load_checkpoint(tmp_path).tokenizer["type"] == "bpe"
    assert main(["sample", "--checkpoint", str(tmp_path), "--prompt", "Whether", "--max-new-tokens", "5"]) == 0
    assert capsys.readouterr().out.split("\n")[-2].startswith("Whether")


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(corpus_file, tmp_path):
    command = [sys.executable, "-m", "tinyllm", "train", "--data", str(corpus_file), "--out", str(tmp_path)]
    command += ["--max-iters", "100000", *TINY]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (tmp_path / "manifest.json").exists() and time.time() < deadline and process.poll() is None:
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    step = int(re.search(r"interrupted at step (\d+)", err).group(1))
    assert step >= 3 and load_checkpoint(tmp_path).step == step
    assert f"interrupted at step {step}" in out


def test_help_and_version_import_neither_numpy_nor_numba():
    code = (
        "import sys, time, io, contextlib\n"
        "start = time.perf_counter()\n"
        "from tinyllm.cli.main import main\n"
        "for argv in (['--help'], ['--version']):\n"
        "    try:\n"
        "        with contextlib.redirect_stdout(io.StringIO()): main(argv)\n"
        "    except SystemExit: pass\n"
        "print(round(time.perf_counter() - start, 3), 'numpy' in sys.modules, 'numba' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1:] == ["False", "False"]
    assert float(out[0]) < 0.3  # tinyllm's own part of `tinyllm --help`, the interpreter's start-up aside


def test_version_is_printed():
    result = subprocess.run([sys.executable, "-m", "tinyllm", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and re.fullmatch(r"tinyllm \d+\.\d+\.\d+\n", result.stdout)
