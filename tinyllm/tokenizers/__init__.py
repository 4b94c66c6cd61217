"""Tokenizers: character level and byte-level BPE, one interface, saved and loaded as JSON."""

from tinyllm.tokenizers.base import Tokenizer
from tinyllm.tokenizers.bpe import GPT2_PATTERN, ByteLevelBPE, bytes_to_unicode
from tinyllm.tokenizers.char import CharTokenizer

__all__ = ["GPT2_PATTERN", "ByteLevelBPE", "CharTokenizer", "Tokenizer", "bytes_to_unicode"]
