"""The check every bad-input case goes through: a typed TinyLLMError whose message names the
argument or file and the problem, raised in bounded time and memory.

`expect_typed_error(call, error, *words)` runs call() under a wall-clock alarm (a hang fails the
case instead of stalling the suite) and tracemalloc (NumPy's buffers are traced too), then checks
the error's type, that every word appears in its message, and the case's time and peak memory.
"""

from __future__ import annotations

import signal
import time
import tracemalloc
from collections.abc import Callable

from tinyllm.errors import TinyLLMError

MAX_SECONDS = 2.0
MAX_BYTES = 200 * 2**20
HANG_SECONDS = 10  # a case still running then is a hang: stop it with an exception


class HangError(Exception):
    pass


def _alarm(signum, frame):
    raise HangError(f"still running after {HANG_SECONDS} s")


def expect_typed_error(call: Callable[[], object], error: type[TinyLLMError], *words: str) -> TinyLLMError:
    """Return the error call() raised, after checking its type, message, time and memory."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_SECONDS)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        call()
    except TinyLLMError as raised:
        caught = raised
    else:
        caught = None
    finally:
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert caught is not None, f"no error raised; expected {error.__name__}"
    assert isinstance(caught, error), f"{type(caught).__name__} raised, expected {error.__name__}: {caught}"
    message = str(caught).lower()
    for word in words:
        assert word.lower() in message, f"the message does not name {word!r}: {caught}"
    assert elapsed < MAX_SECONDS, f"took {elapsed:.2f} s (limit {MAX_SECONDS} s): {caught}"
    assert peak < MAX_BYTES, f"peaked at {peak / 2**20:.0f} MB (limit {MAX_BYTES / 2**20:.0f} MB)"
    return caught


def expect_cli_error(main, argv: list[str], capsys, *words: str) -> str:
    """Return the stderr of `tinyllm ARGV` run in-process, after checking that it failed with exit
    status 2, a message naming every word and no traceback, in bounded time and memory."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_SECONDS)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's own errors (a flag's type, a choice)
            code = exit_.code
    finally:
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    errors = capsys.readouterr().err
    assert code == 2, f"exit status {code}, expected 2; stderr: {errors}"
    assert "Traceback" not in errors
    for word in words:
        assert word.lower() in errors.lower(), f"stderr does not name {word!r}: {errors}"
    assert elapsed < MAX_SECONDS, f"took {elapsed:.2f} s (limit {MAX_SECONDS} s): {errors}"
    assert peak < MAX_BYTES, f"peaked at {peak / 2**20:.0f} MB (limit {MAX_BYTES / 2**20:.0f} MB)"
    return errors
