"""`JSONConfig`: what every config dataclass shares, a round trip through a JSON-ready dict."""

from __future__ import annotations

from dataclasses import asdict, fields

from tinyllm.errors import ConfigError


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
