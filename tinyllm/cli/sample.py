"""`tinyllm sample`: stream a model's continuation of a prompt to stdout, token by token.

examples:
    tinyllm sample --checkpoint out/shakespeare-char --prompt "ROMEO:" --max-new-tokens 200
    tinyllm sample --checkpoint DIR --prompt "To be" --temperature 0.8 --top-k 50 --top-p 0.95 --seed 1
    tinyllm sample --model smollm2 --prompt "The capital of France is" --temperature 0
    tinyllm sample --checkpoint DIR --num-samples 3 --stop "\\n\\n" --repetition-penalty 1.2

Generation ends at the model's end-of-sequence token (if it has one), at a --stop string, or
after --max-new-tokens; special tokens (`<|im_end|>`, ...) are not printed.
"""

from __future__ import annotations

import codecs
import sys


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "sample", help="generate text from a trained or pretrained model", description=__doc__
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", metavar="DIR", help="a folder written by `tinyllm train`")
    source.add_argument("--model", choices=["smollm2"], default=None, help="a pretrained model instead of a checkpoint")
    add_sampling_flags(parser, temperature=1.0, top_p=None)
    parser.add_argument("--prompt", default="\n", help="the text to continue (default: a newline)")
    parser.add_argument("--max-new-tokens", type=int, default=200, metavar="N", help="the most tokens to add")
    parser.add_argument(
        "--num-samples", type=int, default=1, metavar="N", help="continuations to print, one after another"
    )
    parser.add_argument("--stop", action="append", default=None, metavar="TEXT", help="end at this text (repeatable)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: $TINYLLM_DEVICE or cpu)")
    parser.set_defaults(func=run)


def add_sampling_flags(parser, temperature: float, top_p: float | None) -> None:
    """Add the decoding flags that `sample` and `chat` share."""
    parser.add_argument("--temperature", type=float, default=temperature, metavar="T", help="0 means greedy")
    parser.add_argument("--top-k", type=int, default=None, metavar="K", help="keep the K most likely tokens")
    parser.add_argument("--top-p", type=float, default=top_p, metavar="P", help="keep the nucleus of mass P, in (0, 1]")
    parser.add_argument("--min-p", type=float, default=None, metavar="P", help="drop tokens below P x the best one")
    parser.add_argument(
        "--repetition-penalty", type=float, default=1.0, metavar="R", help="> 1 makes tokens already seen less likely"
    )
    parser.add_argument("--seed", type=int, default=None, help="for the same text every run")


def sampling_options(args) -> dict:
    """Return the generation keyword arguments of the sampling flags."""
    return {
        "temperature": args.temperature,
        "top_k": args.top_k,
        "top_p": args.top_p,
        "min_p": args.min_p,
        "repetition_penalty": args.repetition_penalty,
        "seed": args.seed,
    }


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


def stream_text(model, tokenizer, ids: list[int], max_new_tokens: int, **options):
    """Yield the text of each new token as soon as it is sampled (whole characters only; special
    tokens such as `<|im_end|>` are not shown)."""
    from tinyllm.models.generation import stream

    hidden = set(getattr(tokenizer, "special_ids", {}))
    if hasattr(tokenizer, "decode_bytes"):  # byte-level: a character may span two tokens
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        for token in stream(model, ids, max_new_tokens, tokenizer=tokenizer, **options):
            if token in hidden:
                continue
            piece = decoder.decode(tokenizer.decode_bytes([token]))
            if piece:
                yield piece
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail
    else:
        generated, printed = [], 0
        for token in stream(model, ids, max_new_tokens, tokenizer=tokenizer, **options):
            generated.append(token)
            text = tokenizer.decode(generated)
            if len(text) > printed:
                yield text[printed:]
                printed = len(text)


def run(args) -> int:
    from tinyllm.errors import ConfigError
    from tinyllm.models.generation import Sampling
    from tinyllm.validate import check_int

    check_int("--num-samples", args.num_samples, minimum=1)
    Sampling(args.temperature, args.top_k, args.top_p, args.min_p, args.repetition_penalty)  # checked before loading
    check_int("--max-new-tokens", args.max_new_tokens, minimum=0)
    model, tokenizer = load_model(args)
    ids = tokenizer.encode(args.prompt)
    if not ids:
        raise ConfigError("the prompt is empty: give --prompt with at least one token")
    options = sampling_options(args)
    stops = [s.replace("\\n", "\n").replace("\\t", "\t") for s in args.stop or []]  # \n typed in a shell
    for index in range(args.num_samples):
        if args.num_samples > 1:
            sys.stdout.write(f"--- sample {index + 1} of {args.num_samples} ---\n")
        if options["seed"] is not None and index:
            options["seed"] += 1  # a different continuation each, the same set every run
        sys.stdout.write(args.prompt)
        sys.stdout.flush()
        for piece in stream_text(model, tokenizer, ids, args.max_new_tokens, stop_strings=stops, **options):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
    return 0
