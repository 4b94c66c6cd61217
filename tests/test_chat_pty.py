"""`tinyllm chat` as a person uses it: in a terminal (a pseudo-terminal), with SmolLM2.

Ctrl-C in the middle of a reply stops it and returns to the prompt (the chat goes on), a reply
ends at the model's end-of-turn token, and special tokens are never printed.
"""

import os
import re
import select
import signal
import sys
import time
from pathlib import Path

import pytest

pty = pytest.importorskip("pty")  # POSIX only

ROOT = Path(__file__).resolve().parent.parent
SPECIAL = re.compile(r"<\|im_(start|end)\|>|<\|endoftext\|>")


class Terminal:
    """A child process on a pseudo-terminal: what it printed so far, and keys sent to it."""

    def __init__(self, argv: list[str]) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "dumb"}
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: a terminal's foreground process, Ctrl-C delivered as SIGINT
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.chdir(ROOT)
            os.execvpe(sys.executable, [sys.executable, *argv], env)
        self.output = ""

    def expect(self, pattern: str, timeout: float = 120.0, start: int = 0) -> re.Match:
        """Return the first match of pattern in the output after `start`, reading until it appears."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.compile(pattern).search(self.output, start)
            if match:
                return match
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {pattern!r} within {timeout} s; the terminal shows:\n{self.output[-2000:]}")
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # the child closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"the chat ended before {pattern!r}; it showed:\n{self.output[-2000:]}")
                self.output += chunk.decode("utf-8", errors="replace").replace("\r\n", "\n")

    def send(self, keys: str) -> int:
        """Type keys; return the output position before them (for expect's start)."""
        position = len(self.output)
        os.write(self.fd, keys.encode("utf-8"))
        return position

    def close(self) -> int:
        try:
            _, status = os.waitpid(self.pid, 0)
        finally:
            os.close(self.fd)
        return os.waitstatus_to_exitcode(status)


def test_chat_in_a_terminal_ctrl_c_stops_the_reply_eos_ends_it_and_special_tokens_stay_hidden():
    from tinyllm.hub import download

    download("smollm2")  # cached; fetched before the child's clock starts
    terminal = Terminal(["-m", "tinyllm", "chat", "--temperature", "0", "--max-new-tokens", "300"])
    try:
        terminal.expect(r"/help lists the commands")
        start = terminal.send("Tell me a long story about a brave dragon and a clever princess.\n")
        # the echo (the terminal's, and the prompt's redrawn line when the line editor takes the
        # input late), then 30 characters of reply: a Ctrl-C before the reply would cancel the input
        echo = r"princess\.\n(?:> [^\n]*princess\.\n)?"
        reply = terminal.expect(echo + r"(?!> )(.{30,})", start=start)
        interrupt_at = terminal.send("\x03")  # Ctrl-C while the reply is being written
        stats = terminal.expect(r"\[interrupted\] \[(\d+) tokens", timeout=60, start=interrupt_at)
        assert int(stats.group(1)) < 300, "the reply ran to its end instead of stopping"
        terminal.expect(r"\n> ", timeout=30, start=stats.end())  # back at the prompt, the chat goes on

        start = terminal.send("Say only the word yes.\n")
        stats = terminal.expect(r"\[(\d+) tokens, [\d.]+ tokens/s", start=start)
        answer = terminal.output[start : stats.start()]
        assert "yes" in answer.lower()
        assert int(stats.group(1)) < 300, "the reply did not stop at the end-of-turn token"
        assert not SPECIAL.search(terminal.output), "a special token was printed"
        assert "Traceback" not in terminal.output and reply
        terminal.expect(r"\n> ", timeout=30, start=stats.end())
        terminal.send("/exit\n")
    except BaseException:
        os.kill(terminal.pid, signal.SIGKILL)
        raise
    finally:
        code = terminal.close()
    assert code == 0
