"""Bad command lines: every case exits with status 2 and a message naming the flag or file and
the problem, without a traceback, in bounded time and memory (see bad_input.py)."""

import pytest
from bad_input import expect_cli_error

import tinyllm.models.generation
import tinyllm.train  # noqa: F401 - the commands' imports, done here once so that no case pays for them
from tinyllm.cli.main import main

TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4"]
TINY += ["--eval-interval", "2", "--eval-iters", "1", "--no-progress", "--sample-tokens", "0"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "verse.txt"
    path.write_text("Once more unto the breach, dear friends, once more;\n" * 30)
    return path


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--data", str(corpus), "--out", str(out), "--max-iters", "2", *TINY]) == 0
    return out


TRAIN_CASES = [
    (["--checkpoint-interval", "0"], "checkpoint_interval"),
    (["--lr", "-1"], "lr"),
    (["--lr", "nan"], "lr"),
    (["--lr", "abc"], "--lr"),
    (["--grad-clip", "-1"], "grad_clip"),
    (["--batch-size", "0"], "batch_size"),
    (["--max-iters", "-1"], "max_iters"),
    (["--beta1", "1.5"], "beta1"),
    (["--val-fraction", "1.5"], "val_fraction"),
    (["--optimizer", "adam"], "optimizer"),
    (["--eval-interval", "0"], "eval_interval"),
    (["--log-interval", "0"], "log_interval"),
    (["--warmup-iters", "-3"], "warmup_iters"),
    (["--weight-decay", "-0.1"], "weight_decay"),
    (["--tokenizer", "word"], "tokenizer"),
    (["--dropout", "1.0"], "dropout"),
    (["--n-embd", "18", "--n-head", "4"], "divisible"),
    (["--activation", "relu"], "activation"),
    (["--block-size", "0"], "block_size"),
]


@pytest.mark.parametrize("flags,named", TRAIN_CASES)
def test_bad_train_flags(corpus, tmp_path, capsys, flags, named):
    argv = ["train", "--data", str(corpus), "--out", str(tmp_path), "--max-iters", "2", *TINY, *flags]
    expect_cli_error(main, argv, capsys, named)


def test_train_on_a_missing_corpus(tmp_path, capsys):
    expect_cli_error(
        main, ["train", "--data", str(tmp_path / "none.txt"), "--out", str(tmp_path), *TINY], capsys, "none.txt"
    )


def test_train_resume_without_a_checkpoint(corpus, tmp_path, capsys):
    argv = ["train", "--data", str(corpus), "--out", str(tmp_path), "--resume"]
    expect_cli_error(main, argv, capsys, "no checkpoint", str(tmp_path))


def test_train_into_a_folder_with_a_checkpoint(corpus, trained, capsys):
    argv = ["train", "--data", str(corpus), "--out", str(trained), *TINY]
    expect_cli_error(main, argv, capsys, "already holds a checkpoint", "--resume")


SAMPLE_CASES = [
    (["--temperature", "nan"], "temperature"),
    (["--temperature", "-1"], "temperature"),
    (["--top-p", "1.5"], "top_p"),
    (["--top-p", "0"], "top_p"),
    (["--top-k", "0"], "top_k"),
    (["--min-p", "2"], "min_p"),
    (["--repetition-penalty", "0"], "repetition_penalty"),
    (["--num-samples", "0"], "--num-samples"),
    (["--max-new-tokens", "-1"], "--max-new-tokens"),
    (["--max-new-tokens", "many"], "--max-new-tokens"),
    (["--prompt", "\u03a9mega"], "'\u03a9'"),
    (["--prompt", ""], "prompt is empty"),
]


@pytest.mark.parametrize("flags,named", SAMPLE_CASES)
def test_bad_sample_flags(trained, capsys, flags, named):
    expect_cli_error(main, ["sample", "--checkpoint", str(trained), *flags], capsys, named)


def test_sample_without_a_model(capsys):
    expect_cli_error(main, ["sample"], capsys, "--checkpoint")


def test_sample_from_a_missing_checkpoint(tmp_path, capsys):
    expect_cli_error(main, ["sample", "--checkpoint", str(tmp_path / "nothing")], capsys, "no checkpoint", "nothing")


def test_sample_with_both_a_checkpoint_and_a_model(trained, capsys):
    expect_cli_error(main, ["sample", "--checkpoint", str(trained), "--model", "smollm2"], capsys, "not allowed")


@pytest.mark.parametrize(
    "flags,named",
    [
        (["--split", "test"], "--split"),
        (["--batch-size", "0"], "--batch-size"),
        (["--data", "/nonexistent/corpus.txt"], "corpus.txt"),
    ],
)
def test_bad_eval_flags(trained, capsys, flags, named):
    expect_cli_error(main, ["eval", "--checkpoint", str(trained), *flags], capsys, named)


def test_eval_of_a_missing_checkpoint(tmp_path, capsys):
    expect_cli_error(main, ["eval", "--checkpoint", str(tmp_path)], capsys, "no checkpoint")


@pytest.mark.parametrize(
    "flags,named",
    [
        (["--max-new-tokens", "0"], "--max-new-tokens"),
        (["--temperature", "-1"], "temperature"),
        (["--top-p", "0"], "top_p"),
        (["--model", "gpt-5"], "--model"),
    ],
)
def test_bad_chat_flags(capsys, flags, named):
    expect_cli_error(main, ["chat", *flags], capsys, named)


@pytest.mark.parametrize(
    "argv,named",
    [
        ([], "command"),
        (["fly"], "'fly'"),
        (["--bogus", "download", "minilm"], "--bogus"),
        (["download", "gpt-5"], "'gpt-5'"),
        (["train", "--bogus-flag"], "--bogus-flag"),
    ],
)
def test_bad_commands(capsys, argv, named):
    expect_cli_error(main, argv, capsys, named)
