"""Character-level tokenizer: one id per distinct character of the training corpus."""

from __future__ import annotations

from tinyllm.errors import TokenizerError
from tinyllm.tokenizers.base import Tokenizer


class CharTokenizer(Tokenizer):
    """Each character of a fixed alphabet is one token; ids follow the sorted alphabet."""

    type_name = "char"

    def __init__(self, chars) -> None:
        chars = list(chars)
        if not chars:
            raise TokenizerError("a character tokenizer needs a non-empty alphabet")
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise TokenizerError("every entry of a character alphabet must be a single character")
        if len(set(chars)) != len(chars):
            raise TokenizerError("the character alphabet has duplicates")
        self.chars = chars
        self.char_to_id = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """Return a tokenizer over the sorted set of characters in text."""
        if not text:
            raise TokenizerError("cannot build a character tokenizer from empty text")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.char_to_id[c] for c in text]
        except KeyError as error:
            position = next(i for i, c in enumerate(text) if c not in self.char_to_id)
            char = text[position]
            raise TokenizerError(
                f"character {char!r} (U+{ord(char):04X}) at position {position} is not in the tokenizer's "
                f"alphabet of {self.vocab_size} characters"
            ) from error

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in self._check_ids(ids))

    def to_dict(self) -> dict:
        return {"type": self.type_name, "chars": "".join(self.chars)}

    @classmethod
    def _from_state(cls, state: dict) -> CharTokenizer:
        return cls(state["chars"])
