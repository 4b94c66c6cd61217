"""WordPiece on the inputs where a greedy longest match goes wrong: every vocabulary entry, long
words, words glued together from vocabulary pieces; ids compared with transformers'
BertTokenizer on MiniLM's vocab.txt.

Random text rarely holds a word of more than a dozen letters, or a vocabulary piece in full, so
a matcher that stops looking after 11 characters (leaving hundreds of pieces unreachable) passes
every random-text property; here the words come from the vocabulary itself."""

from __future__ import annotations

import pytest
import strategies as s
from hypothesis import given, settings
from hypothesis import strategies as st

pytest_plugins = ["wordpiece_fixtures"]


def read_vocab(minilm_dir) -> list[str]:
    return (minilm_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def vocab(minilm_dir):
    """(whole-word entries, continuation pieces without their "##") of the vocabulary."""
    entries = [t for t in read_vocab(minilm_dir) if not (t.startswith("[") and t.endswith("]"))]
    words = [t for t in entries if not t.startswith("##")]
    pieces = [t[2:] for t in entries if t.startswith("##") and len(t) > 2]
    return words, pieces


def mismatches(tokenizer, reference, texts: list[str]) -> list[str]:
    """Return the texts whose ids differ from transformers' (batch-encoded by its Rust backend)."""
    theirs = reference.backend_tokenizer.encode_batch(texts)
    return [text for text, ref in zip(texts, theirs) if tokenizer.encode(text) != ref.ids]


def test_every_vocabulary_word_gives_the_ids_of_transformers(tokenizer, reference, vocab):
    words, _ = vocab
    long_words = [w for w in words if len(w) > 11]
    assert len(long_words) > 500  # the pieces a length-capped matcher cannot reach
    wrong = mismatches(tokenizer, reference, words)
    assert not wrong, f"{len(wrong)} vocabulary words tokenized differently, e.g. {wrong[:8]}"


def test_every_long_vocabulary_word_is_one_token(tokenizer, vocab):
    words, _ = vocab
    plain = [w for w in words if len(w) > 11 and w.isalpha() and w.isascii() and w.islower()]
    assert len(plain) > 300
    wrong = [w for w in plain if tokenizer.tokenize(w) != [w]]
    assert not wrong, f"{len(wrong)} long vocabulary words were split, e.g. {wrong[:8]}"


def test_every_continuation_piece_after_a_word_gives_the_ids_of_transformers(tokenizer, reference, vocab):
    """'qx' + piece, for every "##piece": the match must find each piece after a first one."""
    _, pieces = vocab
    wrong = mismatches(tokenizer, reference, [f"qx{piece}" for piece in pieces])
    assert not wrong, f"{len(wrong)} words tokenized differently, e.g. {wrong[:8]}"


@st.composite
def glued_words(draw, vocab_words, vocab_pieces):
    """A word glued from 1-5 vocabulary entries (the first a word, the rest pieces or words),
    sometimes capitalized; the glue may make it longer than 100 characters ([UNK])."""
    parts = [draw(st.sampled_from(vocab_words))]
    parts += draw(st.lists(st.sampled_from(vocab_pieces) | st.sampled_from(vocab_words), max_size=4))
    word = "".join(parts)
    return word.upper() if draw(st.booleans()) else word


@settings(max_examples=s.examples(60))
@given(data=st.data())
def test_words_glued_from_vocabulary_pieces_give_the_ids_of_transformers(tokenizer, reference, vocab, data):
    words, pieces = vocab
    text = " ".join(data.draw(st.lists(glued_words(words, pieces), min_size=1, max_size=6), label="words"))
    assert tokenizer(text)["input_ids"] == reference(text)["input_ids"]


@settings(max_examples=s.examples(60))
@given(word=st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzé"), min_size=10, max_size=110))
def test_long_random_words_give_the_ids_of_transformers(tokenizer, reference, word):
    assert tokenizer(word)["input_ids"] == reference(word)["input_ids"]


@pytest.mark.parametrize("length", [99, 100, 101, 150])
def test_words_around_the_100_character_limit(tokenizer, reference, length):
    word = ("tokenization" * 13)[:length]
    assert tokenizer(word)["input_ids"] == reference(word)["input_ids"]
