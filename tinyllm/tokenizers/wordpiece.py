"""BERT's WordPiece tokenizer: text normalization, word splitting, greedy longest-match sub-words.

The ids are those of transformers' `BertTokenizer` (the Rust `tokenizers` pipeline behind it):

1. special tokens written in the text ("[MASK]", "[SEP]", ...) are kept whole;
2. normalize: drop NUL, U+FFFD and control/format/private-use characters, turn whitespace into
   " ", put spaces around CJK ideographs, and (when lower-casing) strip accents (NFD, drop
   non-spacing marks) and lower-case each character;
3. split into words at whitespace and around every punctuation character;
4. split each word greedily into the longest vocabulary pieces, the later ones written "##piece";
   a word with no such split, or longer than 100 characters, becomes [UNK];
5. add [CLS] A [SEP] (B [SEP]), truncate, pad, and build token_type_ids and attention_mask.

Where Python's Unicode tables (`unicodedata`) and the Rust crate's disagree (characters assigned
in recent Unicode versions) we follow `unicodedata`; the tests draw text outside those few
hundred code points.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from tinyllm.errors import TokenizerError
from tinyllm.tokenizers.base import Tokenizer

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_CHARS_PER_WORD = 100

# The CJK ideograph blocks that BERT splits into single characters. The third-from-last range
# starts at 0x2B920, not 0x2B820, as in the `tokenizers` crate that transformers runs.
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B920, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _CJK_RANGES)


def _is_removed(char: str) -> bool:
    """Return whether text cleaning drops the character (control, format, private use, NUL, U+FFFD)."""
    if char in "\t\n\r":
        return False
    return char in "\x00\ufffd" or unicodedata.category(char) in ("Cc", "Cf", "Co")


def _is_whitespace(char: str) -> bool:
    return char.isspace()


def _is_punctuation(char: str) -> bool:
    """ASCII symbols count as punctuation ("$", "+", "^", "`"), and every Unicode P* character."""
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


class BasicTokenizer:
    """Normalizes text and splits it into words and punctuation marks (no vocabulary needed)."""

    def __init__(self, lowercase: bool = True, strip_accents: bool | None = None, split_cjk: bool = True) -> None:
        self.lowercase = lowercase
        self.strip_accents = lowercase if strip_accents is None else strip_accents
        self.split_cjk = split_cjk

    def normalize(self, text: str) -> str:
        """Return the cleaned text: controls dropped, whitespace as " ", CJK spaced, accents and case folded."""
        out = []
        for char in text:
            if _is_removed(char):
                continue
            if _is_whitespace(char):
                out.append(" ")
            elif self.split_cjk and _is_cjk(char):
                out.append(f" {char} ")
            else:
                out.append(char)
        text = "".join(out)
        if self.strip_accents:
            text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
        if self.lowercase:
            text = "".join(c.lower() for c in text)  # per character: no final-sigma rule, as in the Rust crate
        return text

    def split(self, text: str) -> list[str]:
        """Return the words of normalized text: whitespace-separated, each punctuation mark alone."""
        words = []
        for chunk in text.split():
            start = 0
            for i, char in enumerate(chunk):
                if _is_punctuation(char):
                    if i > start:
                        words.append(chunk[start:i])
                    words.append(char)
                    start = i + 1
            if start < len(chunk):
                words.append(chunk[start:])
        return words

    def __call__(self, text: str) -> list[str]:
        return self.split(self.normalize(text))


class WordPieceTokenizer(Tokenizer):
    """The BERT tokenizer of a vocab.txt: `tok(texts, padding=True, truncation=True)` as in transformers."""

    type_name = "wordpiece"

    def __init__(
        self,
        vocab: list[str],
        lowercase: bool = True,
        strip_accents: bool | None = None,
        split_cjk: bool = True,
        model_max_length: int = 512,
    ) -> None:
        self.vocab = list(vocab)
        self.token_to_id = {token: i for i, token in enumerate(self.vocab)}
        if len(self.token_to_id) != len(self.vocab):
            raise TokenizerError(f"vocabulary has {len(self.vocab) - len(self.token_to_id)} duplicate entries")
        missing = [t for t in SPECIAL_TOKENS if t not in self.token_to_id]
        if missing:
            raise TokenizerError(f"vocabulary lacks the special tokens {missing}")
        self.basic = BasicTokenizer(lowercase, strip_accents, split_cjk)
        self.model_max_length = model_max_length
        self.pad_token_id, self.unk_token_id, self.cls_token_id, self.sep_token_id, self.mask_token_id = (
            self.token_to_id[t] for t in SPECIAL_TOKENS
        )
        self.special_ids = frozenset(self.token_to_id[t] for t in SPECIAL_TOKENS)
        self._special_pattern = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")")
        self._word_cache: dict[str, list[int]] = {}

    @classmethod
    def from_file(cls, vocab_path: str | Path, **options) -> WordPieceTokenizer:
        """Return the tokenizer of a vocab.txt (one token per line, the line number is the id)."""
        try:
            text = Path(vocab_path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise TokenizerError(f"cannot read vocabulary file {vocab_path}: {error}") from error
        vocab = text.split("\n")
        if vocab and vocab[-1] == "":
            vocab.pop()
        return cls([token.rstrip("\r") for token in vocab], **options)

    # -- text -> pieces -> ids --------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def _word_ids(self, word: str) -> list[int]:
        """Return the ids of one word's greedy longest-match pieces ([UNK] if it has no split)."""
        ids = self._word_cache.get(word)
        if ids is None:
            ids = self._split_word(word)
            if len(self._word_cache) < 200_000:
                self._word_cache[word] = ids
        return ids

    def _split_word(self, word: str) -> list[int]:
        if len(word) > MAX_CHARS_PER_WORD:
            return [self.unk_token_id]
        ids = []
        start = 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.token_to_id:
                    ids.append(self.token_to_id[piece])
                    start = end
                    break
            else:
                return [self.unk_token_id]
        return ids

    def _text_ids(self, text: str) -> list[int]:
        ids = []
        for part in self._special_pattern.split(text):
            if part in SPECIAL_TOKENS:
                ids.append(self.token_to_id[part])
                continue
            for word in self.basic(part):
                ids.extend(self._word_ids(word))
        return ids

    def tokenize(self, text: str) -> list[str]:
        """Return the word pieces of text, without [CLS]/[SEP]: "unaffable" -> ["una", "##ff", "##able"]."""
        return [self.vocab[i] for i in self._text_ids(text)]

    def convert_tokens_to_ids(self, tokens: list[str]) -> list[int]:
        return [self.token_to_id.get(t, self.unk_token_id) for t in tokens]

    def convert_ids_to_tokens(self, ids) -> list[str]:
        return [self.vocab[i] for i in self._check_ids(ids)]

    def encode(self, text: str, text_pair: str | None = None, add_special_tokens: bool = True) -> list[int]:
        """Return the ids of text (and pair): [CLS] A [SEP] (B [SEP]) unless add_special_tokens=False."""
        return self._build(text, text_pair, add_special_tokens, None)[0]

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        """Return the text of ids: pieces joined, "##" continuations glued, spaces before punctuation cut."""
        tokens = [self.vocab[i] for i in self._check_ids(ids) if not (skip_special_tokens and i in self.special_ids)]
        text = " ".join(tokens).replace(" ##", "")
        for before, after in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't")):
            text = text.replace(before, after)
        return text

    # -- batches: special tokens, truncation, padding ---------------------------------------------
    def _build(self, text, pair, add_special_tokens, max_length):
        """Return (ids, token_type_ids) of one example, truncated to max_length (None: no limit)."""
        if not isinstance(text, str) or (pair is not None and not isinstance(pair, str)):
            raise TokenizerError(f"expected text as str, got {type(text).__name__} and {type(pair).__name__}")
        first = self._text_ids(text)
        second = None if pair is None else self._text_ids(pair)
        if max_length is not None:
            n_special = (2 if second is None else 3) if add_special_tokens else 0
            budget = max_length - n_special
            if budget < 0:
                raise TokenizerError(f"max_length={max_length} leaves no room for the {n_special} special tokens")
            first, second = _truncate_longest_first(first, second, budget)
        if not add_special_tokens:
            second = second or []
            return first + second, [0] * len(first) + [1] * len(second)
        ids = [self.cls_token_id, *first, self.sep_token_id]
        types = [0] * len(ids)
        if second is not None:
            ids += [*second, self.sep_token_id]
            types += [1] * (len(second) + 1)
        return ids, types

    def __call__(
        self,
        text: str | list[str],
        text_pair: str | list[str] | None = None,
        padding: bool | str = False,
        truncation: bool = False,
        max_length: int | None = None,
        add_special_tokens: bool = True,
        return_tensors: str | None = None,
    ) -> Encoding:
        """Return an Encoding with input_ids, token_type_ids and attention_mask, as transformers does.

        text: one string or a list; text_pair: the second sentences, same form. padding: False,
        True / "longest" (to the longest in the batch) or "max_length". truncation: cut to
        max_length (default model_max_length), removing from the longer sentence of a pair first.
        return_tensors: None (lists), "np" (int64 arrays) or "tl" (tinyllm tensors).
        """
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        if text_pair is None:
            pairs = [None] * len(texts)
        else:
            pairs = [text_pair] if isinstance(text_pair, str) else list(text_pair)
            if len(pairs) != len(texts):
                raise TokenizerError(f"got {len(texts)} texts but {len(pairs)} text pairs")
        if padding not in (False, True, "longest", "max_length", "do_not_pad"):
            raise TokenizerError(f"padding must be False, True, 'longest' or 'max_length', got {padding!r}")
        limit = (max_length or self.model_max_length) if truncation else None
        rows = [self._build(t, p, add_special_tokens, limit) for t, p in zip(texts, pairs)]
        input_ids = [ids for ids, _ in rows]
        token_type_ids = [types for _, types in rows]
        attention_mask = [[1] * len(ids) for ids in input_ids]
        if padding in (True, "longest", "max_length"):
            width = max((len(ids) for ids in input_ids), default=0)
            if padding == "max_length":
                width = max(width, max_length or self.model_max_length)
            for ids, types, mask in zip(input_ids, token_type_ids, attention_mask):
                fill = width - len(ids)
                ids += [self.pad_token_id] * fill
                types += [0] * fill
                mask += [0] * fill
        encoding = Encoding(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask)
        if single:
            encoding = Encoding({key: value[0] for key, value in encoding.items()})
        return encoding.convert(return_tensors)

    def special_tokens_mask(self, ids) -> list[bool]:
        """Return, for each id, whether it is [CLS], [SEP], [PAD], [MASK] or [UNK]."""
        return [int(i) in self.special_ids for i in ids]

    # -- saving ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "type": self.type_name,
            "vocab": self.vocab,
            "lowercase": self.basic.lowercase,
            "strip_accents": self.basic.strip_accents,
            "split_cjk": self.basic.split_cjk,
            "model_max_length": self.model_max_length,
        }

    @classmethod
    def _from_state(cls, state: dict) -> WordPieceTokenizer:
        try:
            return cls(
                state["vocab"],
                lowercase=state["lowercase"],
                strip_accents=state["strip_accents"],
                split_cjk=state["split_cjk"],
                model_max_length=state["model_max_length"],
            )
        except KeyError as error:
            raise TokenizerError(f"wordpiece tokenizer state lacks the key {error}") from error


def _truncate_longest_first(first: list[int], second: list[int] | None, budget: int):
    """Return (first, second) cut to at most `budget` ids together, taking from the longer one first.

    The split is that of the Rust `tokenizers` crate: the shorter sentence keeps its length if
    the longer can absorb the cut, else both get half the budget (the second one the odd id).
    """
    if second is None:
        return first[:budget], None
    n_short, n_long = sorted((len(first), len(second)))
    if n_short + n_long <= budget:
        return first, second
    n_long = n_short if n_short > budget else max(n_short, budget - n_short)
    if n_short + n_long > budget:
        n_short = budget // 2
        n_long = n_short + budget % 2
    if len(first) > len(second):
        n_first, n_second = n_long, n_short
    else:
        n_first, n_second = n_short, n_long
    return first[:n_first], second[:n_second]


class Encoding(dict):
    """A dict of input_ids, token_type_ids, attention_mask that also reads as attributes."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def convert(self, return_tensors: str | None) -> Encoding:
        """Return the same fields as lists (None), NumPy int64 arrays ("np") or tinyllm tensors ("tl")."""
        if return_tensors is None:
            return self
        if return_tensors not in ("np", "tl"):
            raise TokenizerError(f"return_tensors must be None, 'np' or 'tl', got {return_tensors!r}")
        from tinyllm.backend import np

        rows = self["input_ids"]
        if rows and isinstance(rows[0], list) and len({len(row) for row in rows}) > 1:
            raise TokenizerError("rows of different lengths cannot form one array; pass padding=True")
        arrays = {key: np.asarray(value, dtype=np.int64) for key, value in self.items()}
        if return_tensors == "tl":
            from tinyllm.ops import tensor

            arrays = {key: tensor(value) for key, value in arrays.items()}
        return Encoding(arrays)
