"""The `tinyllm` command: one sub-command per module of this package.

Each command module defines `add_parser(subparsers)`, which adds its sub-parser and sets
`func` (called with the parsed arguments, returning an exit code). Only the module of the
command being run is imported (the others appear in `tinyllm --help` by their one-line summary
below), and each imports its heavy dependencies inside `func`, so `tinyllm --help` and
`tinyllm --version` load neither NumPy nor Numba.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from tinyllm import __version__
from tinyllm.errors import TinyLLMError

# command -> (module in tinyllm.cli, one-line summary for `tinyllm --help`)
COMMANDS = {
    "download": ("download", "fetch pretrained weights or data into the local cache"),
    "train": ("train", "train a GPT (preset shakespeare-char)"),
    "sample": ("sample", "generate text from a trained or pretrained model"),
    "eval": ("eval", "validation loss and perplexity of a checkpoint"),
    "chat": ("chat", "chat with a pretrained instruct model"),
    "embed": ("embed", "sentence embeddings or cosine similarities"),
    "finetune": ("finetune", "fine-tune a BERT sentiment classifier"),
    "pretrain-mlm": ("pretrain_mlm", "pretrain a small BERT with masked LM"),
    "viz": ("viz", "pictures: computational graphs, attention maps, token pieces, the logit lens"),
}

EXAMPLES = """\
examples:
  tinyllm train --max-iters 500                    train a small GPT on Shakespeare
  tinyllm sample --checkpoint out/shakespeare-char --prompt "ROMEO:"
  tinyllm chat --model smollm2                     talk to SmolLM2-135M-Instruct
  tinyllm COMMAND --help                           the options of one command
"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions as written (examples stay laid out) and adds "(default: X)" to every
    option whose default is a value (not None, not a switch's False)."""

    def _get_help_string(self, action) -> str:
        help_text = action.help or ""
        default = action.default
        if (
            action.option_strings
            and "default" not in help_text
            and default not in (None, False, argparse.SUPPRESS)
            and not isinstance(action, (argparse._HelpAction, argparse._VersionAction))
        ):
            help_text += (" " if help_text else "") + "(default: %(default)s)"
        return help_text


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Return the parser; `command`'s sub-parser complete, the others as one-line stubs."""
    parser = argparse.ArgumentParser(
        prog="tinyllm",
        description="Train, run and inspect small Transformer models.",
        epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, summary) in COMMANDS.items():
        if name == command:
            importlib.import_module(f"tinyllm.cli.{module}").add_parser(subparsers)
            subparsers.choices[name].formatter_class = HelpFormatter
        else:
            subparsers.add_parser(name, help=summary)
    return parser


def _command_of(argv: list[str]) -> str | None:
    """Return the sub-command named in argv (the first word that is one), or None."""
    return next((word for word in argv if word in COMMANDS), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_command_of(argv)).parse_args(argv)
    try:
        from tinyllm import kernels  # reads $TINYLLM_KERNELS, which may be wrong

        # the process is ours: a faster allocator policy, and the kernel threads that suit the work:
        # token-by-token decoding wants threads that wake fast, the rest (big BLAS products beside
        # the parallel kernels) one pool for both, unless an MPI launcher started several ranks,
        # whose spinning threads would share the cores (kernels/runtime.py)
        if args.command in ("sample", "chat"):
            kernels.tune_for_inference()
        else:
            from tinyllm.distributed.world import launched_world_size

            kernels.tune_for_training(one_pool=launched_world_size() == 1)
        return int(args.func(args) or 0)
    except TinyLLMError as error:
        print(f"tinyllm {args.command}: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
