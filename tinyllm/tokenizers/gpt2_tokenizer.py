"""GPT-2's tokenizer: byte-level BPE with 50,000 merges and `<|endoftext|>` (id 50256).

It ships in two spellings, both read here into a `ByteLevelBPE`:
- Hugging Face / OpenAI's original: `vocab.json` (alias `encoder.json`, {token: id}, tokens in
  GPT-2's byte alphabet) and `merges.txt` (alias `vocab.bpe`, one "a b" merge per line, best first);
- tiktoken's: `gpt2.tiktoken`, one "base64(token bytes) rank" per line and no merges. The id of
  a token is its rank, and the merges are recovered from the ranks: a token of rank r is the
  merge of the two pieces that BPE with only the ranks below r leaves of its bytes.

`tinyllm.hub.download("gpt2-tokenizer")` fetches `gpt2.tiktoken` from the openai-whisper sdist.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from tinyllm.errors import ConfigError, TokenizerError
from tinyllm.tokenizers.bpe import GPT2_PATTERN, ByteLevelBPE, bytes_to_unicode

END_OF_TEXT = "<|endoftext|>"


def read_tiktoken_ranks(path) -> dict[bytes, int]:
    """Return {token bytes: rank} of a .tiktoken file."""
    ranks = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except ValueError as error:
            raise TokenizerError(
                f"{Path(path).name} line {number}: expected 'base64 rank', got {line[:60]!r}"
            ) from error
    return ranks


def _bpe_below(ranks: dict[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    """Return the pieces BPE leaves of token's bytes using only merges of rank < max_rank."""
    parts = [bytes([b]) for b in token]
    while len(parts) > 1:
        best_rank, best_index = None, None
        for index in range(len(parts) - 1):
            rank = ranks.get(parts[index] + parts[index + 1])
            if rank is not None and rank < max_rank and (best_rank is None or rank < best_rank):
                best_rank, best_index = rank, index
        if best_index is None:
            break
        parts[best_index : best_index + 2] = [parts[best_index] + parts[best_index + 1]]
    return parts


def vocab_and_merges_from_ranks(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Return (vocab {token: id}, merges [(a, b)] best first) equivalent to tiktoken's ranks."""
    spell = bytes_to_unicode()

    def spelled(token: bytes) -> str:
        return "".join(spell[b] for b in token)

    vocab = {spelled(token): rank for token, rank in ranks.items()}
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) == 1:
            continue
        pieces = _bpe_below(ranks, token, rank)
        if len(pieces) != 2:
            raise TokenizerError(f"token {token!r} (rank {rank}) is not the merge of two lower-ranked tokens")
        merges.append((spelled(pieces[0]), spelled(pieces[1])))
    return vocab, merges


def read_vocab_and_merges(vocab_path, merges_path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Return (vocab, merges) from vocab.json/encoder.json and merges.txt/vocab.bpe."""
    vocab = json.loads(Path(vocab_path).read_text(encoding="utf-8"))
    merges = []
    for line in Path(merges_path).read_text(encoding="utf-8").splitlines():
        if line.startswith("#version") or not line.strip():
            continue
        pieces = line.split(" ")
        if len(pieces) != 2:
            raise TokenizerError(f"{Path(merges_path).name}: a merge line must be 'a b', got {line!r}")
        merges.append((pieces[0], pieces[1]))
    return vocab, merges


def load_gpt2_tokenizer(path) -> ByteLevelBPE:
    """Return GPT-2's tokenizer from a gpt2.tiktoken file, or from a directory holding either
    vocab.json + merges.txt, encoder.json + vocab.bpe, or gpt2.tiktoken."""
    path = Path(path)
    if path.is_dir():
        for vocab_name, merges_name in (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe")):
            if (path / vocab_name).is_file() and (path / merges_name).is_file():
                vocab, merges = read_vocab_and_merges(path / vocab_name, path / merges_name)
                break
        else:
            if not (path / "gpt2.tiktoken").is_file():
                raise ConfigError(
                    f"{path} holds no GPT-2 tokenizer: expected vocab.json + merges.txt, "
                    "encoder.json + vocab.bpe, or gpt2.tiktoken"
                )
            vocab, merges = vocab_and_merges_from_ranks(read_tiktoken_ranks(path / "gpt2.tiktoken"))
    elif path.is_file():
        vocab, merges = vocab_and_merges_from_ranks(read_tiktoken_ranks(path))
    else:
        raise ConfigError(f"GPT-2 tokenizer files not found: {path}")
    special = {END_OF_TEXT: vocab.get(END_OF_TEXT, max(vocab.values()) + 1)}
    return ByteLevelBPE(vocab, merges, GPT2_PATTERN, special)
