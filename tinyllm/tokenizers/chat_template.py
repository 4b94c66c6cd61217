"""Chat templates: the Jinja2 program a model ships to turn a conversation into its prompt text.

Rendered the way transformers' `apply_chat_template(..., tokenize=False)` renders it: a sandboxed
Jinja2 environment with `trim_blocks` and `lstrip_blocks`, the `loopcontrols` extension, a `tojson`
filter that does not escape HTML, and the globals `raise_exception` and `strftime_now`; the
template sees `messages`, `add_generation_prompt` and the special tokens (`bos_token`, ...).
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache

from tinyllm.errors import TokenizerError


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

    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
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

    for index, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise TokenizerError(f"chat message {index} must be a dict with 'role' and 'content', got {message!r}")
    try:
        return _compile(template).render(messages=messages, add_generation_prompt=add_generation_prompt, **variables)
    except jinja2.exceptions.TemplateError as error:
        raise TokenizerError(f"chat template failed: {error}") from error
