"""Training runs for the data-parallel tests: run under `mpiexec -n N python distributed_program.py
SCENARIO OUT`, or called in-process (`train(...)`, one process) as the reference they must equal.

Every run trains the same tiny GPT on the same text with the same seed; only the number of ranks
and the options differ. Each run writes its checkpoint folder under OUT.
"""

from __future__ import annotations

import sys
import time

import tinyllm as tl
from tinyllm import distributed
from tinyllm.data import Corpus
from tinyllm.io import load_checkpoint
from tinyllm.models import GPT, GPTConfig
from tinyllm.nn import Parameter
from tinyllm.tokenizers import CharTokenizer
from tinyllm.train import TrainConfig, Trainer

TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 30
TOKENIZER = CharTokenizer.from_text(TEXT)
STEPS = 20
# name: options of train(); the float64 runs must match one process within 1e-6, float32 within 1e-5
SCENARIOS = {
    "float64": {"dtype": "float64"},
    "float64-accum-clip": {"dtype": "float64", "grad_accum_steps": 2, "grad_clip": 0.05},
    "float64-zero-accum-clip": {"dtype": "float64", "zero": 1, "grad_accum_steps": 2, "grad_clip": 0.05},
    "float32-accum-clip": {"dtype": "float32", "grad_accum_steps": 2, "grad_clip": 0.05},
    "float32-zero-accum-clip": {"dtype": "float32", "zero": 1, "grad_accum_steps": 2, "grad_clip": 0.05},
}
HALF = {"dtype": "float64", "grad_accum_steps": 2, "grad_clip": 0.05}  # the run stopped at 10 and resumed


def tiny_gpt(dtype: str) -> GPT:
    tl.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=TOKENIZER.vocab_size, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.0))
    if dtype != "float32":
        converted = {}
        for module in model.modules():
            for name, param in list(module._parameters.items()):
                if id(param) not in converted:  # tied weights stay tied
                    converted[id(param)] = Parameter(param.detach().to(dtype))
                setattr(module, name, converted[id(param)])
    return model


def train(out_dir, comm=None, dtype="float32", max_iters=STEPS, resume=False, fail_at=None, **options) -> Trainer:
    """Return the Trainer after training the tiny GPT to max_iters steps (from out_dir's checkpoint if resume).

    fail_at=(rank, step): that rank raises RuntimeError after that step."""
    settings = dict(batch_size=8, max_iters=max_iters, lr_decay_iters=STEPS, warmup_iters=4, lr=3e-3)
    settings |= dict(eval_interval=STEPS, eval_iters=1, log_interval=1, seed=5, weight_decay=0.1) | options
    corpus = Corpus.from_text(TEXT, TOKENIZER, block_size=8)

    def fail(trainer, record):
        if fail_at is not None and (trainer.comm.rank, record["step"]) == tuple(fail_at):
            raise RuntimeError(f"deliberate failure at step {record['step']} (failed at {time.time()})")

    trainer = Trainer(
        tiny_gpt(dtype),
        TOKENIZER,
        corpus,
        TrainConfig(**settings),
        out_dir,
        callbacks=[fail],
        progress=False,
        comm=comm,
    )
    if resume:
        trainer.load_checkpoint(load_checkpoint(out_dir))
    trainer.fit()
    return trainer


def main(scenario: str, out: str) -> None:
    comm = distributed.init()  # a rank that raises ends every rank (at exit, before close)
    if scenario == "equivalence":  # every scenario, then the first half of the resumed run
        for name, options in SCENARIOS.items():
            train(f"{out}/{name}", comm, **options)
        train(f"{out}/resumed", comm, max_iters=STEPS // 2, **HALF)
    elif scenario == "resume":  # the second half on another number of ranks, with ZeRO-1, and two scenarios
        train(f"{out}/resumed", comm, resume=True, zero=1, **HALF)
        for name in ("float64-zero-accum-clip", "float32-accum-clip"):
            train(f"{out}/{name}", comm, **SCENARIOS[name])
    elif scenario == "fail":
        train(f"{out}/failed", comm, max_iters=1000, checkpoint_interval=2, fail_at=(1, 5))
    comm.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
