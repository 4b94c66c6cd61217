"""Reading files that may have been crafted: bounded sizes, regular files only, shallow JSON.

Checkpoints, safetensors, GGUF and tokenizer files come from disks and downloads we do not
control. Whatever they hold, reading them must end in a typed error or a value, in time and
memory proportional to the file: a path that is a link or a device (`/dev/zero`), a length field
of 2^64, or JSON nested 100,000 deep must not exhaust memory, the stack or the clock.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from tinyllm.errors import TinyLLMError

# Deeper than any file tinyllm writes (a tokenizer or optimizer state is under 10 levels deep).
MAX_JSON_DEPTH = 64


def read_regular_file(
    path: str | os.PathLike,
    error: type[TinyLLMError],
    max_bytes: int | None = None,
    follow_links: bool = True,
    expected_bytes: int | None = None,
) -> bytes:
    """Return the bytes of a regular file, or raise `error` naming the file and the problem.

    Refuses devices, pipes and folders (a read of /dev/zero never ends), links unless
    follow_links, files over max_bytes, and files whose size is not expected_bytes; sizes are
    checked on the open file before any byte is read.
    """
    path = Path(path)
    # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below, as not regular)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) * (not follow_links)
    try:
        if not follow_links and path.is_symlink():
            raise error(f"{path} is a symbolic link; tinyllm does not follow links here")
        fd = os.open(path, flags)
    except OSError as failure:
        raise error(f"cannot read {path}: {failure.strerror or failure}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise error(f"{path} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        if max_bytes is not None and info.st_size > max_bytes:
            raise error(f"{path} has {info.st_size} bytes, more than the {max_bytes} allowed for it")
        if expected_bytes is not None and info.st_size != expected_bytes:
            raise error(f"{path} has {info.st_size} bytes, expected {expected_bytes} (truncated or replaced?)")
        data = f.read(info.st_size + 1)
    if len(data) != info.st_size:
        raise error(f"{path} changed size while being read")
    return data


def parse_json(data: bytes | str, source: str, error: type[TinyLLMError], max_depth: int = MAX_JSON_DEPTH):
    """Return the value of JSON text, or raise `error` if it is not UTF-8 JSON or nests deeper than max_depth.

    The C decoder stops at Python's recursion limit (a RecursionError, turned into `error`);
    what it returns is then measured without recursion.
    """
    try:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8")
        value = json.loads(text)
    except RecursionError:
        raise error(f"{source}: JSON nested deeper than the {max_depth} levels allowed") from None
    except (UnicodeDecodeError, ValueError) as failure:
        raise error(f"{source} is not valid JSON: {failure}") from None
    depth = json_depth(value)
    if depth > max_depth:
        raise error(f"{source}: JSON nested {depth} levels deep, more than the {max_depth} allowed")
    return value


def json_depth(value) -> int:
    """Return how deeply lists and dicts nest in a JSON value (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest
