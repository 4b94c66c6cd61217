"""`tinyllm chat`: talk to a pretrained instruct model, one line of stdin per user turn.

    tinyllm chat --model smollm2
    printf 'What is the capital of France?\\nAnd of Italy?\\n' | tinyllm chat --model smollm2 --temperature 0

Each turn is added to the conversation, the model's chat template renders the whole conversation
into the prompt, and the reply streams to stdout token by token until the model's end-of-turn
token. After each reply, stderr gets the number of tokens and the decoding speed in tokens/s.
`/reset` starts a new conversation; `/exit` (or the end of stdin) quits. When a conversation no
longer fits in the context, its oldest turns are dropped.
"""

from __future__ import annotations

import codecs
import sys
import time
from collections.abc import Iterator

# --model NAME -> (hub asset, file in it)
PRETRAINED = {"smollm2": ("smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("chat", help="chat with a pretrained instruct model", description=__doc__)
    parser.add_argument("--model", choices=sorted(PRETRAINED), default="smollm2", help="which pretrained model")
    parser.add_argument("--system", default=None, help="a system message (default: the template's own)")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="the longest reply, in tokens")
    parser.add_argument("--temperature", type=float, default=0.7, help="0 means greedy")
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-cache", action="store_true", help="recompute every position at each step")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cpu)")
    parser.set_defaults(func=run)


def load_pretrained(name: str, device: str | None = None):
    """Return (model, tokenizer) of a model named in PRETRAINED, fetching it on first use."""
    from tinyllm.errors import ConfigError
    from tinyllm.hub import download
    from tinyllm.models.llama import Llama

    if name not in PRETRAINED:
        raise ConfigError(f"unknown pretrained model {name!r}; known: {', '.join(sorted(PRETRAINED))}")
    asset, filename = PRETRAINED[name]
    model = Llama.from_gguf(download(asset) / filename)
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
        """Yield the pieces of the model's answer to `text` as they are sampled."""
        from tinyllm.models.generation import stream

        self.messages.append({"role": "user", "content": text})
        try:
            ids = self.prompt_ids()
        except Exception:
            self.messages.pop()  # a turn that cannot be answered leaves the conversation as it was
            raise
        self.last_prompt_tokens = len(ids)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces, count = [], 0
        start = time.perf_counter()
        for token in stream(self.model, ids, self.max_new_tokens, stop=self.tokenizer.eos_id, **self.sampling):
            count += 1
            if count == 1:
                self.first_token_seconds = time.perf_counter() - start  # the prompt's prefill
            piece = decoder.decode(self.tokenizer.decode_bytes([token]))
            if piece:
                pieces.append(piece)
                yield piece
        tail = decoder.decode(b"", final=True)
        if tail:
            pieces.append(tail)
            yield tail
        self.last_tokens, self.last_seconds = count, time.perf_counter() - start
        self.messages.append({"role": "assistant", "content": "".join(pieces)})


def run(args) -> int:
    model, tokenizer = load_pretrained(args.model, args.device)
    sampling = {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p, "seed": args.seed}
    session = ChatSession(model, tokenizer, args.system, args.max_new_tokens, use_cache=not args.no_cache, **sampling)
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"chatting with {args.model}; /reset starts over, /exit quits", file=sys.stderr)
    while True:
        if interactive:
            print("> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:
            break
        text = line.rstrip("\n")
        if text.strip() == "/exit":
            break
        if text.strip() == "/reset":
            session.reset()
            continue
        if not text.strip():
            continue
        for piece in session.reply(text):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        sys.stdout.flush()
        speed = session.last_tokens / session.last_seconds if session.last_seconds else 0.0
        print(
            f"[{session.last_tokens} tokens, {speed:.1f} tokens/s; prompt of {session.last_prompt_tokens} tokens "
            f"read in {session.first_token_seconds:.2f} s]",
            file=sys.stderr,
            flush=True,
        )
    return 0
