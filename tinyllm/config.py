"""`JSONConfig`: what every config dataclass shares, a round trip through a JSON-ready dict."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields

from tinyllm.errors import ArgumentError, ConfigError

# Upper bounds of model sizes: far above any model tinyllm runs, low enough that a crafted
# config.json or GGUF header cannot make it allocate terabytes before a weight is read.
MAX_VOCAB_SIZE = 1 << 22
MAX_CONTEXT = 1 << 17  # Llama 3.1 reads 128k positions; RoPE tables of that many take 64 MB
MAX_LAYERS = 512
MAX_WIDTH = 1 << 16
MAX_FFN = 1 << 18


@contextmanager
def config_checks() -> Iterator[None]:
    """Turn the ArgumentError of a `tinyllm.validate` check inside a config's `__post_init__` into
    ConfigError (same message), the error every config raises for a bad field."""
    try:
        yield
    except ArgumentError as error:
        raise ConfigError(str(error)) from None


class JSONConfig:
    """Mixin for config dataclasses: `to_dict()` for JSON next to the weights, `from_dict()` back."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        """Return the config stored by `to_dict` (unknown keys are an error, missing optional ones default)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown fields {unknown}; expected some of {sorted(known)}")
        try:
            return cls(**data)
        except TypeError as error:  # a required field is missing
            raise ConfigError(f"{cls.__name__}: {error}") from None
