"""The trainer: exact resume, Ctrl-C, gradient accumulation, logs and plots, learning, bad input."""

import json
import os
import signal

import numpy as np
import pytest

import tinyllm as tl
from tinyllm.data import Corpus
from tinyllm.errors import CheckpointError, DataError
from tinyllm.io import load_checkpoint
from tinyllm.models import GPT, GPTConfig
from tinyllm.tokenizers import CharTokenizer
from tinyllm.train import TrainConfig, Trainer, load_trained

TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 30
TOKENIZER = CharTokenizer.from_text(TEXT)


def tiny_gpt(seed=0, dropout=0.1):
    tl.manual_seed(seed)
    return GPT(
        GPTConfig(vocab_size=TOKENIZER.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=dropout)
    )


def make_trainer(out_dir=None, callbacks=(), model=None, **overrides):
    settings = dict(batch_size=4, max_iters=6, warmup_iters=2, eval_interval=3, eval_iters=2, log_interval=1, seed=5)
    config = TrainConfig(**{**settings, **overrides})
    corpus = Corpus.from_text(TEXT, TOKENIZER, block_size=8)
    return Trainer(model or tiny_gpt(), TOKENIZER, corpus, config, out_dir=out_dir, callbacks=callbacks, progress=False)


def stop_at(step):
    def callback(trainer, record):
        if record["step"] == step:
            raise KeyboardInterrupt

    return callback


def weights(model):
    return model.state_dict()


def test_resume_is_exact(tmp_path):
    """N steps in one run == k steps, interrupt, resume in a fresh process state, N - k steps."""
    straight = make_trainer(tmp_path / "straight", grad_accum_steps=2)
    straight.fit()

    first = make_trainer(tmp_path / "resumed", callbacks=[stop_at(4)], grad_accum_steps=2)
    result = first.fit()
    assert result.interrupted and result.step == 4
    tl.manual_seed(12345)  # a different global RNG state before resuming: the checkpoint must restore it
    second = make_trainer(tmp_path / "resumed", model=tiny_gpt(seed=99), grad_accum_steps=2)
    second.load_checkpoint()
    assert second.step == 4
    assert second.fit().step == 6

    for name, value in weights(straight.model).items():
        assert np.array_equal(value, weights(second.model)[name]), name
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "resumed")
    assert a.state["rng"] == b.state["rng"] and a.state["data"] == b.state["data"]
    for index, state in a.optimizer["state"].items():
        assert np.array_equal(state["exp_avg_sq"], b.optimizer["state"][index]["exp_avg_sq"])
    steps = [r["step"] for r in map(json.loads, (tmp_path / "resumed" / "log.jsonl").read_text().splitlines())]
    assert steps == [r["step"] for r in map(json.loads, (tmp_path / "straight" / "log.jsonl").read_text().splitlines())]


def test_ctrl_c_signal_saves_a_checkpoint_and_returns_cleanly(tmp_path):
    def press_ctrl_c(trainer, record):
        if record["step"] == 2:
            os.kill(os.getpid(), signal.SIGINT)

    trainer = make_trainer(tmp_path, callbacks=[press_ctrl_c], max_iters=50)
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the suite runs in the background
    result = trainer.fit()
    assert result.interrupted and result.step == 2
    assert load_checkpoint(tmp_path).step == 2
    assert signal.getsignal(signal.SIGINT) is before


def test_interrupt_inside_a_step_rolls_back_to_its_start(tmp_path):
    trainer = make_trainer(tmp_path, max_iters=5)
    forward = trainer.model.forward
    after_step_3 = {}

    def forward_interrupted_in_step_4(idx, *args, **kwargs):
        logits = forward(idx, *args, **kwargs)  # draws dropout masks
        if trainer.step == 3 and trainer.model.training:  # batch and masks drawn, the update not yet made
            raise KeyboardInterrupt
        return logits

    def remember(t, record):
        after_step_3.update(rng=tl.backend.RANDOM.get_state(), data=t.sampler.state_dict(), weights=weights(t.model))

    trainer.model.forward = forward_interrupted_in_step_4
    trainer.callbacks.append(remember)
    result = trainer.fit()
    assert result.interrupted and result.step == 3
    saved = load_checkpoint(tmp_path)
    assert saved.state["data"] == after_step_3["data"] and saved.state["rng"] == after_step_3["rng"]
    assert all(np.array_equal(v, saved.weights[k]) for k, v in after_step_3["weights"].items())


def test_gradient_accumulation_equals_one_big_batch():
    small = make_trainer(model=tiny_gpt(dropout=0.0), batch_size=4, grad_accum_steps=2, max_iters=1, eval_iters=1)
    big = make_trainer(model=tiny_gpt(dropout=0.0), batch_size=8, grad_accum_steps=1, max_iters=1, eval_iters=1)
    small.train_step()
    big.train_step()
    for name, value in weights(small.model).items():
        np.testing.assert_allclose(value, weights(big.model)[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_training_lowers_the_loss_and_writes_log_plot_and_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path, max_iters=40, eval_interval=20, eval_iters=4, log_interval=5, batch_size=8)
    trainer.config.lr = 1e-2
    trainer.schedule = type(trainer.schedule)(1e-2, 2, 40, 1e-3)
    result = trainer.fit()
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [0, 20, 40]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 0.8
    assert evals[-1]["val_ppl"] == pytest.approx(np.exp(evals[-1]["val_loss"]))
    assert {r["step"] for r in records if r["kind"] == "train"} == set(range(5, 41, 5))
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model, tokenizer, checkpoint = load_trained(tmp_path)
    assert checkpoint.step == 40 and checkpoint.state["val_loss"] == result.val_loss
    assert tokenizer.to_dict() == TOKENIZER.to_dict()
    for name, value in weights(trainer.model).items():
        assert np.array_equal(value, weights(model)[name])


def test_sgd_trains_too():
    trainer = make_trainer(optimizer="sgd", lr=0.5, max_iters=3)
    before = weights(trainer.model)["h.0.mlp.c_fc.weight"].copy()
    trainer.fit()
    assert not np.array_equal(before, weights(trainer.model)["h.0.mlp.c_fc.weight"])


def test_resuming_a_corrupted_checkpoint_is_an_error_and_overwrites_nothing(tmp_path):
    make_trainer(tmp_path, max_iters=3).fit()
    model_file = next(tmp_path.glob("step-*/model.safetensors"))
    data = bytearray(model_file.read_bytes())
    data[-1] ^= 0xFF
    model_file.write_bytes(bytes(data))
    snapshot = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    trainer = make_trainer(tmp_path, max_iters=6)
    before = weights(trainer.model)
    with pytest.raises(CheckpointError, match="model.safetensors does not match its SHA-256"):
        trainer.load_checkpoint()
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == snapshot
    assert all(np.array_equal(v, weights(trainer.model)[k]) for k, v in before.items())


def test_corpus_too_short_for_the_block_is_a_data_error():
    corpus = Corpus.from_text("To be, or not to be", TOKENIZER)
    with pytest.raises(DataError, match="has 2 tokens.*block_size 8 needs 9"):
        Trainer(tiny_gpt(), TOKENIZER, corpus, TrainConfig(), progress=False)


def test_training_on_the_strict_array_api_backend_matches_numpy():
    results = {}
    for device in ("cpu", "strict"):
        trainer = make_trainer(model=tiny_gpt(), device=device, max_iters=3, grad_clip=0.5)
        trainer.fit()
        results[device] = weights(trainer.model)
    for name, value in results["cpu"].items():  # the CPU may run fused attention kernels: rounding differs
        np.testing.assert_allclose(results["strict"][name], value, rtol=1e-4, atol=1e-5, err_msg=name)


def test_checkpoint_of_another_model_shape_is_an_error_and_loads_nothing(tmp_path):
    make_trainer(tmp_path, max_iters=2).fit()
    tl.manual_seed(0)
    wider = GPT(GPTConfig(vocab_size=TOKENIZER.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=32))
    trainer = make_trainer(tmp_path, model=wider)
    before = weights(trainer.model)
    with pytest.raises(CheckpointError, match="do not fit the model"):
        trainer.load_checkpoint()
    assert all(np.array_equal(v, weights(trainer.model)[k]) for k, v in before.items())
