"""The `tinyllm` command: one sub-command per module of this package.

Each command module defines `add_parser(subparsers)`, which adds its sub-parser and sets
`func` (called with the parsed arguments, returning an exit code). Modules are imported only
when listed here, and each imports its heavy dependencies inside `func`, so `tinyllm --help`
stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from tinyllm.errors import TinyLLMError

COMMANDS = [
    "download",
    "train",
    "sample",
    "eval",
    "chat",
    "embed",
    "finetune",
    "pretrain_mlm",
    "viz",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinyllm", description="Train, run and inspect small Transformer models.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"tinyllm.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TinyLLMError as error:
        print(f"tinyllm {args.command}: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
