"""`tinyllm train`: train a GPT on the bundled Shakespeare (or any UTF-8 file), with checkpoints and resume.

    tinyllm train                                  # the shakespeare-char preset, into out/shakespeare-char/
    tinyllm train --max-iters 500 --n-layer 2      # any field of GPTConfig or TrainConfig as a flag
    tinyllm train --data my.txt --out runs/mine    # another corpus and folder
    tinyllm train --out runs/mine --resume         # continue from the folder's checkpoint
    mpiexec -n 4 tinyllm train --zero 1            # data-parallel on 4 ranks, AdamW moments sharded

Every field of `GPTConfig` (except vocab_size, which the tokenizer gives) and of `TrainConfig` has a
flag (`--n-embd`, `--batch-size`, `--lr`, `--eval-interval`, `--device`, `--seed`, ...); flags left
out take the preset's value, or on `--resume` the value the run was started with. Ctrl-C saves a
checkpoint and exits with status 130; `--resume` continues exactly where it stopped.

Under `mpiexec -n N` the ranks train one model data-parallel: `--batch-size` is the global batch,
split into N equal slices (it must divide by N); only rank 0 prints, logs and writes
checkpoints, which resume on any number of ranks. Killing `mpiexec` (SIGTERM) saves like Ctrl-C.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

PRESETS = {
    "shakespeare-char": {
        "model": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "dropout": 0.0},
        "train": {
            "batch_size": 12,
            "lr": 1e-3,
            "min_lr": 1e-4,
            "max_iters": 2000,
            "warmup_iters": 100,
            "eval_interval": 250,
            "eval_iters": 20,
            "tokenizer": "char",
        },
    },
}


def _flag_type(annotation: str):
    """Return the argparse type of a dataclass field annotation such as "int", "float | None"."""
    base = annotation.replace(" ", "").replace("|None", "")
    return {"int": int, "float": float, "str": str, "bool": bool}[base]


def _add_dataclass_flags(group, cls, preset: dict, skip=()) -> list[str]:
    """Add a --flag (default None: "not given") for each field of a dataclass; return the field names."""
    names = []
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        kind = _flag_type(str(field.type))
        flag = "--" + field.name.replace("_", "-")
        default = preset.get(field.name, field.default)
        if kind is bool:
            group.add_argument(flag, action="store_true", default=None, help=f"(preset: {default})")
            group.add_argument("--no-" + field.name.replace("_", "-"), dest=field.name, action="store_false")
        else:
            group.add_argument(
                flag, type=kind, default=None, metavar=kind.__name__.upper(), help=f"(preset: {default})"
            )
        names.append(field.name)
    return names


def add_parser(subparsers) -> None:
    from tinyllm.models import GPTConfig
    from tinyllm.train import TrainConfig

    parser = subparsers.add_parser(
        "train",
        help="train a GPT (preset shakespeare-char)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="shakespeare-char")
    parser.add_argument("--out", default=None, help="checkpoint folder (default: out/<preset>)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    parser.add_argument("--overwrite", action="store_true", help="start afresh even if --out holds a checkpoint")
    parser.add_argument("--sample-tokens", type=int, default=300, help="length of the sample printed at the end")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    preset = PRESETS["shakespeare-char"]
    model_group = parser.add_argument_group("model (GPTConfig)")
    model_flags = _add_dataclass_flags(model_group, GPTConfig, preset["model"], skip={"vocab_size"})
    train_flags = _add_dataclass_flags(
        parser.add_argument_group("training (TrainConfig)"), TrainConfig, preset["train"]
    )
    parser.set_defaults(func=run, model_flags=model_flags, train_flags=train_flags)


def run(args) -> int:
    import tinyllm as tl
    from tinyllm import distributed
    from tinyllm.cli.sample import stream_text
    from tinyllm.data import Corpus, load_text
    from tinyllm.errors import ConfigError
    from tinyllm.io import has_checkpoint, load_checkpoint
    from tinyllm.models import GPT, GPTConfig
    from tinyllm.tokenizers import ByteLevelBPE, CharTokenizer, Tokenizer
    from tinyllm.train import TrainConfig, Trainer, build_model, perplexity

    out = args.out or f"out/{args.preset}"
    model_given = {n: getattr(args, n) for n in args.model_flags if getattr(args, n) is not None}
    train_given = {n: getattr(args, n) for n in args.train_flags if getattr(args, n) is not None}
    preset = PRESETS[args.preset]

    if args.resume:
        checkpoint = load_checkpoint(out)
        if model_given:
            raise ConfigError(f"--resume keeps the model of the checkpoint; drop {sorted(model_given)}")
        config = TrainConfig.from_dict({**checkpoint.state["train_config"], **train_given})
        tokenizer = Tokenizer.from_dict(checkpoint.tokenizer)
        model = build_model(checkpoint.config)
    else:
        if has_checkpoint(out) and not args.overwrite:
            raise ConfigError(f"{out} already holds a checkpoint; pass --resume to continue it, or --overwrite")
        config = TrainConfig(**{**preset["train"], **train_given})
        checkpoint = None
    comm = distributed.init(config.device)  # MPI under `mpiexec -n N`, else a world of one process
    text = load_text(config.data)
    if checkpoint is None:
        train_text = text[: int(len(text) * (1 - config.val_fraction))]
        if config.tokenizer == "bpe":
            tokenizer = ByteLevelBPE.train(train_text, config.bpe_vocab_size)
        else:
            tokenizer = CharTokenizer.from_text(text)
        tl.manual_seed(config.seed)
        model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, **{**preset["model"], **model_given}))
    corpus = Corpus.from_text(text, tokenizer, config.val_fraction, block_size=model.config.block_size)

    trainer = Trainer(model, tokenizer, corpus, config, out_dir=out, progress=not args.no_progress, comm=comm)
    if checkpoint is not None:
        trainer.load_checkpoint(checkpoint)
    processes = ", ".join(f"{rank}: pid {pid} on {host}" for rank, (host, pid) in enumerate(comm.processes()))
    ranks = f" on {comm.world_size} ranks ({processes})" if comm.world_size > 1 else ""
    if comm.is_main:
        print(
            f"training {model.num_parameters():,} parameters{ranks} on {len(corpus.train):,} tokens "
            f"({config.data or 'bundled Shakespeare'}), {tokenizer.type_name} tokenizer of {tokenizer.vocab_size}, "
            f"steps {trainer.step} -> {config.max_iters}, checkpoints in {out}",
            file=sys.stderr,
        )
    result = trainer.fit()
    comm.close()
    if not comm.is_main:
        return 130 if result.interrupted else 0
    status = "interrupted" if result.interrupted else "done"
    if result.val_loss is not None:
        print(
            f"{status} at step {result.step}: val loss {result.val_loss:.4f}, "
            f"perplexity {perplexity(result.val_loss):.2f}; checkpoint in {out}"
        )
    if result.interrupted:
        return 130
    if args.sample_tokens > 0:
        print("--- sample ---")
        prompt = "\n" if "\n" in text[:1000] else text[0]
        sys.stdout.write(prompt)
        pieces = stream_text(
            model, tokenizer, tokenizer.encode(prompt), args.sample_tokens, temperature=0.8, top_k=200, seed=config.seed
        )
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
    return 0
