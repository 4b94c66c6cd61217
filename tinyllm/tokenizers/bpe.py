"""Byte-level BPE (GPT-2 style): text -> UTF-8 bytes -> printable symbols -> ranked merges -> ids.

Every byte maps to one printable Unicode character (GPT-2's `bytes_to_unicode`), so any string
is a sequence of symbols in a 256-letter alphabet and round-trips exactly. A pre-tokenizer regex
splits text into words first (merges never cross a word boundary), then each word is merged
greedily: the adjacent pair with the lowest merge rank is joined (the leftmost of equal ranks),
until no ranked pair is left. A heap of candidate pairs over a linked list of symbols makes a
word of n bytes cost O(n log n), as Hugging Face's tokenizers do, not O(n^2).

The pattern comes from a file, so it is untrusted: the known pre-tokenizer patterns
(`KNOWN_PATTERNS`) run as they are; any other is matched under a time bound, so a pattern that
backtracks catastrophically (`(a|aa)+$`) raises TokenizerError instead of hanging.

`ByteLevelBPE(vocab, merges, pattern, special_tokens)` takes the same data as GPT-2's vocab.json
and merges.txt, or a GGUF file's token list and merges; `ByteLevelBPE.train(text, vocab_size)`
learns merges from a corpus.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from functools import lru_cache

import regex

from tinyllm.config import MAX_VOCAB_SIZE
from tinyllm.errors import TokenizerError
from tinyllm.tokenizers.base import Tokenizer

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
KNOWN_PATTERNS = frozenset({GPT2_PATTERN, LLAMA3_PATTERN, QWEN2_PATTERN})
MAX_PATTERN_LENGTH = 1000


def _match_seconds(text: str) -> float:
    """The time bound of an unknown pattern on text: generous for linear matching (about 10x)."""
    return 0.25 + 2e-6 * len(text)


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """Return GPT-2's map of the 256 byte values to printable characters.

    Printable Latin-1 bytes map to themselves; the other 68 (controls, space, ...) are shifted
    to U+0100 and up, so that no symbol is whitespace or a control character.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + shifted)
            shifted += 1
    return mapping


class ByteLevelBPE(Tokenizer):
    """Byte-level BPE over a vocab {token: id}, ranked merges [(a, b), ...] and special tokens."""

    type_name = "bpe"

    def __init__(
        self,
        vocab: dict[str, int],
        merges: list[tuple[str, str]],
        pattern: str = GPT2_PATTERN,
        special_tokens: dict[str, int] | None = None,
    ) -> None:
        self.vocab = dict(vocab)
        self.merges = [tuple(m) for m in merges]
        _check_entries(self.vocab, special_tokens or {}, self.merges)
        self.pattern = pattern
        self.special_tokens = dict(special_tokens or {})
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        # A vocab may lack some byte symbols (SmolLM2's lacks a few control bytes and 0xF1-0xFF);
        # such bytes are dropped when encoding, as Hugging Face's BPE without an unknown token does.
        self.missing_bytes = [c for c in self.byte_encoder.values() if c not in self.vocab]
        for rank, (a, b) in enumerate(self.merges):
            if a + b not in self.vocab:
                raise TokenizerError(f"merge {rank} ({a!r}, {b!r}) makes {a + b!r}, which is not in the vocab")
        self.ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        size = 1 + max([*self.vocab.values(), *self.special_tokens.values()])
        self.id_to_token: list[str | None] = [None] * size
        for token, token_id in self.vocab.items():
            self.id_to_token[token_id] = token
        self.special_ids = {token_id: token for token, token_id in self.special_tokens.items()}
        if not isinstance(pattern, str) or len(pattern) > MAX_PATTERN_LENGTH:
            raise TokenizerError(f"pre-tokenizer pattern must be a string of at most {MAX_PATTERN_LENGTH} characters")
        try:
            self.splitter = regex.compile(pattern)
        except (regex.error, RecursionError, OverflowError) as error:
            raise TokenizerError(f"pre-tokenizer pattern {pattern[:80]!r} does not compile: {error}") from None
        self.pattern_is_known = pattern in KNOWN_PATTERNS
        specials = sorted(self.special_tokens, key=len, reverse=True)
        self.special_splitter = (
            regex.compile("(" + "|".join(regex.escape(s) for s in specials) + ")") if specials else None
        )
        self._word_cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.id_to_token)

    # -- encoding ------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        segments = self.special_splitter.split(text) if self.special_splitter else [text]
        for index, segment in enumerate(segments):
            if index % 2 == 1:  # the splitter's capture group: a special token
                ids.append(self.special_tokens[segment])
            elif segment:
                for word in self.pre_tokenize(segment):
                    ids.extend(self._encode_word(word))
        return ids

    def pre_tokenize(self, text: str) -> list[str]:
        """Return the words the pattern splits text into (their concatenation is text)."""
        if self.pattern_is_known:
            words = self.splitter.findall(text)
        else:
            try:
                words = self.splitter.findall(text, timeout=_match_seconds(text))
            except TimeoutError:
                raise TokenizerError(
                    f"pre-tokenizer pattern {self.pattern[:80]!r} took longer than {_match_seconds(text):.2f} s on "
                    f"{len(text)} characters (catastrophic backtracking?); use one of the known patterns"
                ) from None
        if sum(len(w) for w in words) != len(text):
            raise TokenizerError(f"pre-tokenizer pattern {self.pattern!r} does not cover every character of the text")
        return words

    def _encode_word(self, word: str) -> list[int]:
        cached = self._word_cache.get(word)
        if cached is not None:
            return cached
        symbols = self._merge([self.byte_encoder[b] for b in word.encode("utf-8")])
        ids = (
            [self.vocab[s] for s in symbols if s in self.vocab]
            if self.missing_bytes
            else [self.vocab[s] for s in symbols]
        )
        if len(self._word_cache) < 100_000:
            self._word_cache[word] = ids
        return ids

    def _merge(self, symbols: list[str]) -> list[str]:
        """Return symbols after every merge: repeatedly join the lowest-ranked adjacent pair (leftmost first).

        symbols[i] is None once merged into its left neighbour; following[i] / preceding[i] link the
        live ones. The heap holds (rank, i) for the pair starting at i; an entry whose pair has since
        changed is stale and skipped when popped, so each merge costs O(log n).
        """
        n = len(symbols)
        if n < 2:
            return symbols
        ranks = self.ranks
        following = list(range(1, n + 1))  # n: the end
        preceding = list(range(-1, n - 1))  # -1: the start
        heap = [(ranks[pair], i) for i, pair in enumerate(zip(symbols, symbols[1:])) if pair in ranks]
        heapq.heapify(heap)
        while heap:
            rank, i = heapq.heappop(heap)
            j = following[i] if symbols[i] is not None else n
            if j == n or ranks.get((symbols[i], symbols[j])) != rank:
                continue  # stale: i was merged away, or its right neighbour changed
            symbols[i] += symbols[j]
            symbols[j] = None
            following[i] = following[j]
            if following[j] < n:
                preceding[following[j]] = i
            left, right = preceding[i], following[i]
            if left >= 0 and (symbols[left], symbols[i]) in ranks:
                heapq.heappush(heap, (ranks[symbols[left], symbols[i]], left))
            if right < n and (symbols[i], symbols[right]) in ranks:
                heapq.heappush(heap, (ranks[symbols[i], symbols[right]], i))
        return [s for s in symbols if s is not None]

    # -- decoding ------------------------------------------------------------------------------
    def decode_bytes(self, ids) -> bytes:
        """Return the raw bytes of ids (a prefix of a generation may end inside a character)."""
        out = bytearray()
        for position, token_id in enumerate(self._check_ids(ids)):
            if token_id in self.special_ids:
                out += self.special_ids[token_id].encode("utf-8")
                continue
            token = self.id_to_token[token_id]
            if token is None:
                raise TokenizerError(f"token id {token_id} at position {position} has no token in the vocab")
            for symbol in token:
                byte = self.byte_decoder.get(symbol)
                out += symbol.encode("utf-8") if byte is None else bytes((byte,))
        return bytes(out)

    def decode(self, ids) -> str:
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # -- serialization -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "type": self.type_name,
            "pattern": self.pattern,
            "vocab": self.vocab,
            "merges": [list(m) for m in self.merges],
            "special_tokens": self.special_tokens,
        }

    @classmethod
    def _from_state(cls, state: dict) -> ByteLevelBPE:
        return cls(state["vocab"], state["merges"], state["pattern"], state.get("special_tokens"))

    # -- training ------------------------------------------------------------------------------
    @classmethod
    def train(
        cls, text: str, vocab_size: int, pattern: str = GPT2_PATTERN, special_tokens: list[str] | tuple = ()
    ) -> ByteLevelBPE:
        """Return a BPE of vocab_size tokens: the 256 bytes, merged tokens, then the special tokens.

        (Fewer tokens when a small text runs out of pairs before reaching vocab_size.)

        Counts pairs once per distinct pre-tokenized word (weighted by its frequency) and after
        each merge updates only the words that contain the merged pair; a heap with lazy deletion
        finds the most frequent pair (ties: the smallest pair of ids, so training is deterministic).
        """
        n_tokens = vocab_size - len(special_tokens)
        if n_tokens < 256:
            raise TokenizerError(
                f"vocab_size {vocab_size} is smaller than 256 byte tokens + {len(special_tokens)} special tokens"
            )
        byte_encoder = bytes_to_unicode()
        tokens = [byte_encoder[b] for b in range(256)]
        token_ids = {token: token_id for token_id, token in enumerate(tokens)}
        word_counts = Counter(regex.findall(pattern, text))
        words = [list(word.encode("utf-8")) for word in word_counts]
        freqs = list(word_counts.values())

        pair_counts: dict[tuple[int, int], int] = defaultdict(int)
        words_with: dict[tuple[int, int], set[int]] = defaultdict(set)
        for index, symbols in enumerate(words):
            for pair in zip(symbols, symbols[1:]):
                pair_counts[pair] += freqs[index]
                words_with[pair].add(index)
        heap = [(-count, pair) for pair, count in pair_counts.items()]
        heapq.heapify(heap)

        merges: list[tuple[int, int]] = []
        while len(tokens) < n_tokens and heap:
            negative_count, pair = heapq.heappop(heap)
            if pair_counts.get(pair, 0) != -negative_count:
                continue  # a stale heap entry: the pair's count changed since it was pushed
            merged_token = tokens[pair[0]] + tokens[pair[1]]
            new_id = token_ids.get(merged_token)
            if new_id is None:  # two merge paths can spell the same token: keep one id for it
                new_id = token_ids[merged_token] = len(tokens)
                tokens.append(merged_token)
            merges.append(pair)
            changed = set()
            for index in words_with.pop(pair):
                symbols, freq = words[index], freqs[index]
                merged = _merge_pair(symbols, pair, new_id)
                if len(merged) == len(symbols):
                    continue
                for old in zip(symbols, symbols[1:]):
                    pair_counts[old] -= freq
                    changed.add(old)
                for new in zip(merged, merged[1:]):
                    pair_counts[new] += freq
                    words_with[new].add(index)
                    changed.add(new)
                words[index] = merged
            for changed_pair in changed:
                count = pair_counts[changed_pair]
                if count > 0:
                    heapq.heappush(heap, (-count, changed_pair))
                else:
                    del pair_counts[changed_pair]
        vocab = token_ids
        specials = {token: len(tokens) + i for i, token in enumerate(special_tokens)}
        return cls(vocab, [(tokens[a], tokens[b]) for a, b in merges], pattern, specials)


def _check_entries(vocab: dict, special_tokens: dict, merges: list) -> None:
    """Raise TokenizerError unless tokens are strings with integer ids in [0, MAX_VOCAB_SIZE) and
    merges are pairs of strings (a file could hold anything; an id of 10**12 would allocate a
    table of that many entries)."""
    for table, what in ((vocab, "vocab"), (special_tokens, "special_tokens")):
        for token, token_id in table.items():
            if (
                not isinstance(token, str)
                or not isinstance(token_id, int)
                or isinstance(token_id, bool)
                or not 0 <= token_id < MAX_VOCAB_SIZE
            ):
                raise TokenizerError(
                    f"{what} entry {str(token)[:40]!r}: {str(token_id)[:40]} is not a token id in [0, {MAX_VOCAB_SIZE})"
                )
    for rank, merge in enumerate(merges):
        if len(merge) != 2 or not all(isinstance(part, str) for part in merge):
            raise TokenizerError(f"merge {rank} must be a pair of strings, got {str(merge)[:60]}")


def _merge_pair(symbols: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Return symbols with every non-overlapping occurrence of pair (left to right) replaced by new_id."""
    merged, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == pair[0] and symbols[i + 1] == pair[1]:
            merged.append(new_id)
            i += 2
        else:
            merged.append(symbols[i])
            i += 1
    return merged
