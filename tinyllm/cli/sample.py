"""`tinyllm sample`: stream a model's continuation of a prompt to stdout, token by token.

    tinyllm sample --checkpoint out/shakespeare-char --prompt "ROMEO:" --max-new-tokens 200
    tinyllm sample --checkpoint DIR --prompt "To be" --temperature 0.8 --top-k 50 --top-p 0.95 --seed 1

`load_model` picks the model from the arguments; a new source of models (a pretrained file)
is one more option in `add_parser` and one more branch there.
"""

from __future__ import annotations

import argparse
import codecs
import sys


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "sample",
        help="generate text from a trained model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", metavar="DIR", help="a folder written by `tinyllm train`")
    parser.add_argument("--model", choices=["smollm2"], default=None, help="a pretrained model instead of a checkpoint")
    parser.add_argument("--prompt", default="\n", help="the text to continue (default: a newline)")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=1.0, help="0 means greedy")
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: $TINYLLM_DEVICE or cpu)")
    parser.set_defaults(func=run)


def load_model(args):
    """Return (model, tokenizer) named by the arguments."""
    from tinyllm.errors import ConfigError
    from tinyllm.train import load_trained

    if getattr(args, "model", None) is not None:
        from tinyllm.cli.chat import load_pretrained

        return load_pretrained(args.model, args.device)
    if args.checkpoint is None:
        raise ConfigError("tinyllm sample needs --checkpoint DIR or --model NAME")
    model, tokenizer, _ = load_trained(args.checkpoint, device=args.device)
    return model, tokenizer


def stream_text(model, tokenizer, ids: list[int], max_new_tokens: int, **sampling):
    """Yield the text of each new token as soon as it is sampled (whole characters only)."""
    from tinyllm.models.generation import stream

    if hasattr(tokenizer, "decode_bytes"):  # byte-level: a character may span two tokens
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        for token in stream(model, ids, max_new_tokens, **sampling):
            piece = decoder.decode(tokenizer.decode_bytes([token]))
            if piece:
                yield piece
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail
    else:
        generated, printed = [], 0
        for token in stream(model, ids, max_new_tokens, **sampling):
            generated.append(token)
            text = tokenizer.decode(generated)
            if len(text) > printed:
                yield text[printed:]
                printed = len(text)


def run(args) -> int:
    from tinyllm.errors import ConfigError

    model, tokenizer = load_model(args)
    ids = tokenizer.encode(args.prompt)
    if not ids:
        raise ConfigError("the prompt is empty: give --prompt with at least one token")
    sys.stdout.write(args.prompt)
    sys.stdout.flush()
    sampling = {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p, "seed": args.seed}
    for piece in stream_text(model, tokenizer, ids, args.max_new_tokens, **sampling):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0
