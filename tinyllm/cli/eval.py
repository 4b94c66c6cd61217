"""`tinyllm eval`: the validation loss and perplexity of a trained model, over a full pass of the data.

examples:
    tinyllm eval --checkpoint out/shakespeare-char             # the corpus it was trained on, val split
    tinyllm eval --checkpoint DIR --data other.txt --split all
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="validation loss and perplexity of a checkpoint",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", metavar="DIR", required=True, help="a folder written by `tinyllm train`")
    parser.add_argument("--data", metavar="FILE", default=None, help="UTF-8 text (default: the training corpus)")
    parser.add_argument("--split", choices=["val", "train", "all"], default="val", help="which part of the text")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per forward pass")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cpu)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from tinyllm.backend import np
    from tinyllm.data import Corpus, load_text, sequential_windows
    from tinyllm.train import evaluate_loss, load_trained, perplexity
    from tinyllm.validate import check_int

    check_int("--batch-size", args.batch_size, minimum=1)
    model, tokenizer, checkpoint = load_trained(args.checkpoint, device=args.device)
    train_config = checkpoint.state.get("train_config", {})
    data = args.data if args.data is not None else train_config.get("data")
    text = load_text(data)
    if args.split == "all":
        ids = np.asarray(tokenizer.encode(text), dtype=np.int64)
    else:
        corpus = Corpus.from_text(text, tokenizer, train_config.get("val_fraction", 0.1))
        ids = corpus.val if args.split == "val" else corpus.train
    block_size = model.config.block_size
    batches = sequential_windows(ids, args.batch_size, block_size)
    loss = evaluate_loss(model, batches, args.device)
    windows = sum(len(x) for x, _ in batches)
    fraction = train_config.get("val_fraction", 0.1)
    where = {"val": f"the last {fraction:.0%} of", "train": f"the first {1 - fraction:.0%} of", "all": "all of"}
    print(
        f"{args.split} loss {loss:.4f}, perplexity {perplexity(loss):.2f} on {where[args.split]} "
        f"{data or 'the bundled Shakespeare'} ({windows * block_size:,} tokens in {windows} windows of {block_size}; "
        f"checkpoint step {checkpoint.step})"
    )
    return 0
