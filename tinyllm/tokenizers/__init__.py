"""Tokenizers: character level and byte-level BPE, one interface, saved and loaded as JSON."""

from tinyllm.tokenizers.base import Tokenizer
from tinyllm.tokenizers.bpe import GPT2_PATTERN, ByteLevelBPE, bytes_to_unicode
from tinyllm.tokenizers.char import CharTokenizer
from tinyllm.tokenizers.wordpiece import WordPieceTokenizer

__all__ = ["GPT2_PATTERN", "ByteLevelBPE", "CharTokenizer", "Tokenizer", "WordPieceTokenizer", "bytes_to_unicode"]
