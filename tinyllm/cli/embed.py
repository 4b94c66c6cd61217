"""`tinyllm embed`: sentence embeddings of texts (mean pooling + L2 norm), or their cosine similarities.

    tinyllm embed "A man is eating food." "Someone is having a meal."
    tinyllm embed --similarity "A man is eating food." "Someone is having a meal." "The market fell."

The model is all-MiniLM-L6-v2 (fetched with `tinyllm download minilm` on first use) or any
transformers-layout BERT folder given with --model.
"""

from __future__ import annotations

import json
import sys


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("embed", help="sentence embeddings or cosine similarities", description=__doc__)
    parser.add_argument("texts", nargs="+", help="the texts to embed ('-' reads one text per line from stdin)")
    parser.add_argument("--model", metavar="DIR", default=None, help="a BERT folder (default: MiniLM from the hub)")
    parser.add_argument("--similarity", action="store_true", help="print the cosine-similarity matrix instead")
    parser.add_argument("--digits", type=int, default=4, help="decimals to print (default 4)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.set_defaults(func=run)


def run(args) -> int:
    from tinyllm.hub import download
    from tinyllm.models import BERT

    texts = [line.rstrip("\n") for line in sys.stdin if line.strip()] if args.texts == ["-"] else args.texts
    model = BERT.from_pretrained(args.model or download("minilm"))
    vectors = model.embed(texts, batch_size=args.batch_size).numpy()  # (N, C), unit rows
    if args.similarity:
        similarity = vectors @ vectors.T  # (N, N) cosines
        width = max(len(str(i)) for i in range(len(texts))) + 1
        print(" " * width + "".join(f"{j:>{args.digits + 4}}" for j in range(len(texts))))
        for i, row in enumerate(similarity):
            print(
                f"{i:<{width}}"
                + "".join(f"{value:>{args.digits + 4}.{args.digits}f}" for value in row)
                + f"  {texts[i]}"
            )
        return 0
    for text, vector in zip(texts, vectors):
        print(json.dumps({"text": text, "embedding": [round(float(v), args.digits) for v in vector]}))
    return 0
