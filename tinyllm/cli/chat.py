r"""`tinyllm chat`: talk to a pretrained instruct model.

examples:
    tinyllm chat --model smollm2
    tinyllm chat --system "You answer in one sentence." --temperature 0
    printf 'What is the capital of France?\nAnd of Italy?\n' | tinyllm chat --temperature 0

Each turn is added to the conversation, the model's chat template renders the whole conversation
into the prompt, and the reply streams token by token until the model's end-of-turn token
(special tokens are not printed). After each reply, stderr gets the number of tokens and the
decoding speed. When a conversation no longer fits in the context, its oldest turns are dropped.

At the prompt (on a terminal) the arrow keys edit the line and walk the history; a line ending
in a backslash continues on the next line, and a line of three double quotes starts and ends a
block of several lines. Ctrl-C stops a reply and returns to the prompt; Ctrl-D or /exit quits.
Commands: /help, /reset (asks first on a terminal), /exit. Piped input is one line per turn.
"""

from __future__ import annotations

import codecs
import signal
import sys
import time
from collections.abc import Callable, Iterator

from tinyllm.cli.sample import add_sampling_flags, sampling_options

# --model NAME -> (hub asset, file in it)
PRETRAINED = {"smollm2": ("smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


HELP = """commands:
  /help     this list
  /reset    forget the conversation and start a new one
  /exit     quit (as does Ctrl-D)
a line ending in \\ continues on the next line; a line of \"\"\" starts and ends a block of lines;
Ctrl-C stops the reply being written"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("chat", help="chat with a pretrained instruct model", description=__doc__)
    parser.add_argument("--model", choices=sorted(PRETRAINED), default="smollm2", help="which pretrained model")
    parser.add_argument("--system", default=None, metavar="TEXT", help="a system prompt (default: the template's own)")
    parser.add_argument("--max-new-tokens", type=int, default=256, metavar="N", help="the longest reply, in tokens")
    add_sampling_flags(parser, temperature=0.7, top_p=0.9)
    parser.add_argument("--no-cache", action="store_true", help="recompute every position at each step")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cpu)")
    parser.set_defaults(func=run)


def load_pretrained(name: str, device: str | None = None):
    """Return (model, tokenizer) of a model named in PRETRAINED, fetching it on first use.

    On the CPU the model keeps the file's quantized blocks beside its float32 weights, and each
    decoding step multiplies the blocks (nn/quantized.py): 1.8x the float32 decoding speed."""
    from tinyllm.errors import ConfigError
    from tinyllm.hub import download
    from tinyllm.models.llama import Llama

    if name not in PRETRAINED:
        raise ConfigError(f"unknown pretrained model {name!r}; known: {', '.join(sorted(PRETRAINED))}")
    asset, filename = PRETRAINED[name]
    model = Llama.from_gguf(download(asset) / filename, quantized=device in (None, "cpu"))
    if device is not None:
        model.to(device)
    return model, model.tokenizer


class ChatSession:
    """A conversation with a model: `reply(text)` streams the answer and keeps both turns."""

    def __init__(self, model, tokenizer, system: str | None = None, max_new_tokens: int = 256, **sampling) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.system = system
        self.max_new_tokens = max_new_tokens
        self.sampling = sampling
        self.messages: list[dict] = []
        self.last_tokens, self.last_seconds = 0, 0.0
        self.first_token_seconds, self.last_prompt_tokens = 0.0, 0

    def reset(self) -> None:
        self.messages = []

    def prompt_ids(self) -> list[int]:
        """Return the ids of the rendered conversation, oldest turns dropped until it fits."""
        from tinyllm.errors import ShapeError

        room = self.model.config.block_size - self.max_new_tokens
        while True:
            head = [{"role": "system", "content": self.system}] if self.system is not None else []
            text = self.tokenizer.apply_chat_template(head + self.messages, add_generation_prompt=True)
            ids = self.tokenizer.encode(text)
            if len(ids) <= room:
                return ids
            if len(self.messages) <= 1:
                raise ShapeError(
                    f"the message needs {len(ids)} tokens; with {self.max_new_tokens} for the reply it exceeds "
                    f"the model's context length {self.model.config.block_size}"
                )
            self.messages = self.messages[2:]  # drop the oldest user turn and its reply

    def reply(self, text: str) -> Iterator[str]:
        """Yield the pieces of the model's answer to `text` as they are sampled; special tokens
        are not shown. Closed early (Ctrl-C), the conversation keeps the part already shown."""
        from tinyllm.models.generation import stream

        self.messages.append({"role": "user", "content": text})
        try:
            ids = self.prompt_ids()
        except Exception:
            self.messages.pop()  # a turn that cannot be answered leaves the conversation as it was
            raise
        self.last_prompt_tokens = len(ids)
        hidden = set(getattr(self.tokenizer, "special_ids", {}))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces, count = [], 0
        start = time.perf_counter()
        try:
            for token in stream(self.model, ids, self.max_new_tokens, stop=self.tokenizer.eos_id, **self.sampling):
                count += 1
                if count == 1:
                    self.first_token_seconds = time.perf_counter() - start  # the prompt's prefill
                if token in hidden:
                    continue
                piece = decoder.decode(self.tokenizer.decode_bytes([token]))
                if piece:
                    pieces.append(piece)
                    yield piece
            tail = decoder.decode(b"", final=True)
            if tail:
                pieces.append(tail)
                yield tail
        finally:
            self.last_tokens, self.last_seconds = count, time.perf_counter() - start
            self.messages.append({"role": "assistant", "content": "".join(pieces)})


def read_message(read_line: Callable[[str], str | None]) -> str | None:
    """Return the next user message, or None at the end of input: one line, lines joined by a
    trailing backslash, or the lines between two lines of three double quotes."""
    first = read_line("> ")
    if first is None:
        return None
    if first.strip() == '"""':
        lines = []
        while (line := read_line("... ")) is not None and line.strip() != '"""':
            lines.append(line)
        return "\n".join(lines)
    lines = [first]
    while lines[-1].endswith("\\"):
        lines[-1] = lines[-1][:-1]
        line = read_line("... ")
        if line is None:
            break
        lines.append(line)
    return "\n".join(lines)


def _line_reader(interactive: bool) -> Callable[[str], str | None]:
    """Return read_line(prompt) -> the line without its newline, or None at the end of input."""
    if interactive:
        import readline  # noqa: F401 - importing it gives input() line editing and history

        def read_line(prompt: str) -> str | None:
            try:
                return input(prompt)
            except EOFError:
                print(file=sys.stderr)
                return None

        return read_line

    def read_piped(prompt: str) -> str | None:
        line = sys.stdin.readline()
        return line.removesuffix("\n") if line else None

    return read_piped


def run(args) -> int:
    from tinyllm.models.generation import Sampling
    from tinyllm.validate import check_int

    check_int("--max-new-tokens", args.max_new_tokens, minimum=1)
    Sampling(args.temperature, args.top_k, args.top_p, args.min_p, args.repetition_penalty)  # checked before loading
    interactive = sys.stdin.isatty()
    if hasattr(sys.stdin, "reconfigure"):
        sys.stdin.reconfigure(errors="replace")  # bytes that are not UTF-8 become U+FFFD, not a crash
    if interactive:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C works even if started with it ignored
    model, tokenizer = load_pretrained(args.model, args.device)
    sampling = {**sampling_options(args), "use_cache": not args.no_cache}
    session = ChatSession(model, tokenizer, args.system, args.max_new_tokens, **sampling)
    read_line = _line_reader(interactive)
    if interactive:
        print(f"chatting with {args.model}; /help lists the commands, Ctrl-D quits", file=sys.stderr)
    while True:
        try:
            text = read_message(read_line)
        except KeyboardInterrupt:  # Ctrl-C at the prompt drops the line being typed
            print("^C  (Ctrl-D or /exit quits)", file=sys.stderr)
            continue
        if text is None:
            break
        command = text.strip()
        if command in ("/exit", "/quit"):
            break
        if command == "/help":
            print(HELP, file=sys.stderr)
            continue
        if command == "/reset":
            if interactive and (read_line("start a new conversation? [y/N] ") or "").strip().lower() not in (
                "y",
                "yes",
            ):
                print("[kept the conversation]", file=sys.stderr)
                continue
            session.reset()
            print("[new conversation]", file=sys.stderr)
            continue
        if not command:
            continue
        _print_reply(session, text)
    return 0


def _print_reply(session: ChatSession, text: str) -> None:
    """Stream the reply to stdout and its speed to stderr; Ctrl-C ends the reply, not the chat."""
    pieces = session.reply(text)
    interrupted = False
    try:
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
    except KeyboardInterrupt:
        pieces.close()
        interrupted = True
    sys.stdout.write("\n")
    sys.stdout.flush()
    speed = session.last_tokens / session.last_seconds if session.last_seconds else 0.0
    print(
        ("[interrupted] " if interrupted else "")
        + f"[{session.last_tokens} tokens, {speed:.1f} tokens/s; prompt of {session.last_prompt_tokens} tokens "
        f"read in {session.first_token_seconds:.2f} s]",
        file=sys.stderr,
        flush=True,
    )
