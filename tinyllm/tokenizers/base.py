"""The interface every tokenizer implements, and JSON save/load dispatched on a "type" field.

A tokenizer maps text to a list of integer ids and back. Its whole state is a JSON-able dict
(`to_dict`), so a checkpoint stores it as tokenizer.json next to the weights; `from_dict` and
`load` find the right class from the dict's "type".
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from tinyllm.errors import TokenizerError

_REGISTRY: dict[str, type[Tokenizer]] = {}
MAX_FILE_BYTES = 200_000_000  # a 256k-token vocabulary with its merges is under 50 MB


class Tokenizer:
    """Text <-> token ids. Subclasses set `type_name` and implement the four methods below."""

    type_name: str = ""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.type_name:
            _REGISTRY[cls.type_name] = cls

    @property
    def vocab_size(self) -> int:
        """The number of distinct ids: every id is in [0, vocab_size)."""
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        """Return the token ids of text."""
        raise NotImplementedError

    def decode(self, ids) -> str:
        """Return the text of a sequence of token ids."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        """Return the whole state as a JSON-serializable dict with a "type" key."""
        raise NotImplementedError

    @classmethod
    def _from_state(cls, state: dict) -> Tokenizer:
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------
    @staticmethod
    def from_dict(state: dict) -> Tokenizer:
        """Return the tokenizer a `to_dict()` result describes (any registered type)."""
        kind = state.get("type") if isinstance(state, dict) else None
        if not isinstance(kind, str) or kind not in _REGISTRY:
            raise TokenizerError(f"unknown tokenizer type {str(kind)[:50]!r}; known: {', '.join(sorted(_REGISTRY))}")
        try:
            return _REGISTRY[kind]._from_state(state)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
            if isinstance(error, TokenizerError):
                raise
            detail = f"missing {error}" if isinstance(error, KeyError) else f"{type(error).__name__}: {error}"
            raise TokenizerError(f"malformed {kind} tokenizer state ({detail})"[:300]) from None

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as JSON, atomically (temporary file in the same folder, then rename)."""
        path = Path(path)
        text = json.dumps(self.to_dict(), ensure_ascii=False)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @staticmethod
    def load(path: str | os.PathLike) -> Tokenizer:
        """Return the tokenizer saved at path by `save`."""
        from tinyllm.io.untrusted import parse_json, read_regular_file

        data = read_regular_file(path, TokenizerError, max_bytes=MAX_FILE_BYTES)
        return Tokenizer.from_dict(parse_json(data, f"tokenizer file {path}", TokenizerError))

    def _check_ids(self, ids) -> list[int]:
        ids = [int(i) for i in ids]
        for position, token_id in enumerate(ids):
            if not 0 <= token_id < self.vocab_size:
                raise TokenizerError(
                    f"token id {token_id} at position {position} is outside the vocabulary [0, {self.vocab_size})"
                )
        return ids

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"
