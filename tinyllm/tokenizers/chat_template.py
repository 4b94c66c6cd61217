"""Chat templates: the Jinja2 program a model ships to turn a conversation into its prompt text.

Rendered the way transformers' `apply_chat_template(..., tokenize=False)` renders it: a sandboxed
Jinja2 environment with `trim_blocks` and `lstrip_blocks`, the `loopcontrols` extension, a `tojson`
filter that does not escape HTML, and the globals `raise_exception` and `strftime_now`; the
template sees `messages`, `add_generation_prompt` and the special tokens (`bos_token`, ...).

A template comes from a model file, so it is untrusted: besides Jinja2's sandbox (no attribute
access to internals, ranges of at most 100,000), it is at most MAX_TEMPLATE_CHARS long, `*` and
`**` may not build values beyond MAX_OUTPUT_CHARS or huge powers (one C operation that no clock
could interrupt), the rendered text is at most MAX_OUTPUT_CHARS, and rendering stops after
MAX_RENDER_SECONDS (a trace function watches the clock). Every failure is a TokenizerError.
"""

from __future__ import annotations

import json
import operator
import sys
import time
from datetime import datetime
from functools import lru_cache

from tinyllm.errors import TokenizerError

MAX_TEMPLATE_CHARS = 100_000  # real chat templates are a few thousand characters
MAX_OUTPUT_CHARS = 1_000_000
MAX_RENDER_SECONDS = 1.0


def _bounded_binop(environment, context, name: str, left, right):
    """`left * right` and `left ** right` as the sandbox computes them, refused when too large."""
    if name == "*":
        for sequence, count in ((left, right), (right, left)):
            if isinstance(sequence, (str, list, tuple)) and isinstance(count, int):
                if len(sequence) * count > MAX_OUTPUT_CHARS:
                    raise TokenizerError(f"chat template: repeating a sequence {count} times is too large")
        return operator.mul(left, right)
    if name == "**":
        if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 256:
            raise TokenizerError(f"chat template: {left} ** {right} is too large")
        return operator.pow(left, right)
    return environment.binop_table[name](left, right)


@lru_cache(maxsize=8)
def _compile(template: str):
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format_string):
        return datetime.now().strftime(format_string)

    class BoundedEnvironment(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context, name, left, right):
            return _bounded_binop(self, context, name, left, right)

    environment = BoundedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    environment.filters["tojson"] = tojson
    environment.globals["raise_exception"] = raise_exception
    environment.globals["strftime_now"] = strftime_now
    try:
        return environment.from_string(template)
    except jinja2.exceptions.TemplateSyntaxError as error:
        raise TokenizerError(f"chat template does not parse: {error}") from error


def render_chat_template(template: str, messages: list[dict], add_generation_prompt: bool = True, **variables) -> str:
    """Return the prompt text of a conversation [{"role": ..., "content": ...}, ...]."""
    import jinja2

    if not isinstance(template, str) or len(template) > MAX_TEMPLATE_CHARS:
        raise TokenizerError(f"chat template must be a string of at most {MAX_TEMPLATE_CHARS} characters")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise TokenizerError(f"chat message {index} must be a dict with 'role' and 'content', got {message!r}")
    compiled = _compile(template)
    pieces, length = [], 0
    deadline = time.monotonic() + MAX_RENDER_SECONDS
    previous_trace = sys.gettrace()

    def watch_the_clock(frame, event, arg):
        if time.monotonic() > deadline:
            raise TokenizerError(f"chat template: rendering took longer than {MAX_RENDER_SECONDS} s")
        return watch_the_clock

    sys.settrace(watch_the_clock)
    try:
        for piece in compiled.generate(messages=messages, add_generation_prompt=add_generation_prompt, **variables):
            length += len(piece)
            if length > MAX_OUTPUT_CHARS:
                raise TokenizerError(f"chat template: the rendered prompt exceeds {MAX_OUTPUT_CHARS} characters")
            pieces.append(piece)
    except TokenizerError:
        raise
    except jinja2.exceptions.TemplateError as error:
        raise TokenizerError(f"chat template failed: {error}") from error
    except (OverflowError, TypeError, ValueError, RecursionError, MemoryError) as error:
        raise TokenizerError(f"chat template failed: {type(error).__name__}: {error}") from None
    finally:
        sys.settrace(previous_trace)
    return "".join(pieces)
