"""Tokenizers: round trips (hypothesis), typed errors, JSON save/load, and BPE against HF tokenizers."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyllm.errors import TokenizerError
from tinyllm.tokenizers import GPT2_PATTERN, ByteLevelBPE, CharTokenizer, Tokenizer, bytes_to_unicode

TRAINING_TEXT = (
    "First Citizen: Before we proceed any further, hear me speak.\n"
    "All: Speak, speak. You are all resolved rather to die than to famish?\n"
    "Ünïcödé wörds, 日本語のテキスト, emoji 🎉🎉 and numbers 12345 678.\n"
) * 20


@pytest.fixture(scope="module")
def bpe():
    return ByteLevelBPE.train(TRAINING_TEXT, vocab_size=300, special_tokens=["<|endoftext|>"])


@pytest.fixture(scope="module")
def char_tokenizer():
    return CharTokenizer.from_text(TRAINING_TEXT)


# -- character level ------------------------------------------------------------------------------
@given(st.data())
def test_char_round_trips_any_string_over_its_alphabet(char_tokenizer, data):
    text = data.draw(st.text(alphabet=char_tokenizer.chars))
    ids = char_tokenizer.encode(text)
    assert len(ids) == len(text)
    assert char_tokenizer.decode(ids) == text


def test_char_ids_follow_the_sorted_alphabet():
    tokenizer = CharTokenizer.from_text("cabbage")
    assert tokenizer.chars == ["a", "b", "c", "e", "g"]
    assert tokenizer.encode("bag") == [1, 0, 4]


def test_char_unknown_character_is_a_tokenizer_error_naming_it(char_tokenizer):
    with pytest.raises(TokenizerError, match=r"'Ж'.*U\+0416.*position 3"):
        char_tokenizer.encode("abcЖ")


def test_char_id_outside_vocab_is_an_error(char_tokenizer):
    with pytest.raises(TokenizerError, match=f"id {char_tokenizer.vocab_size} .*outside"):
        char_tokenizer.decode([0, char_tokenizer.vocab_size])


def test_char_from_empty_text_is_an_error():
    with pytest.raises(TokenizerError, match="empty"):
        CharTokenizer.from_text("")


# -- byte-level BPE -------------------------------------------------------------------------------
def test_bytes_to_unicode_is_gpt2s_printable_bijection():
    mapping = bytes_to_unicode()
    assert len(set(mapping.values())) == 256
    assert mapping[ord("A")] == "A" and mapping[ord(" ")] == "Ġ" and mapping[ord("\n")] == "Ċ"
    assert all(c.isprintable() and not c.isspace() for c in mapping.values())


@given(st.text())
def test_bpe_round_trips_any_unicode_string(bpe, text):
    assert bpe.decode(bpe.encode(text)) == text


def test_bpe_compresses_its_training_text(bpe):
    ids = bpe.encode(TRAINING_TEXT)
    assert bpe.vocab_size == 300
    assert len(ids) < 0.7 * len(TRAINING_TEXT.encode("utf-8"))
    assert max(ids) < bpe.vocab_size


def test_bpe_special_tokens_encode_to_one_id(bpe):
    eot = bpe.special_tokens["<|endoftext|>"]
    assert eot == 299
    ids = bpe.encode("speak.<|endoftext|>Speak")
    assert ids.count(eot) == 1
    assert bpe.decode(ids) == "speak.<|endoftext|>Speak"


def test_bpe_training_is_deterministic(bpe):
    again = ByteLevelBPE.train(TRAINING_TEXT, vocab_size=300, special_tokens=["<|endoftext|>"])
    assert again.merges == bpe.merges and again.vocab == bpe.vocab


def test_bpe_vocab_too_small_is_an_error():
    with pytest.raises(TokenizerError, match="vocab_size 200 is smaller than 256"):
        ByteLevelBPE.train("abc", vocab_size=200)


def test_bpe_merge_whose_result_is_missing_is_an_error():
    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    with pytest.raises(TokenizerError, match="'ab'.*not in the vocab"):
        ByteLevelBPE(vocab, [("a", "b")])


def test_bpe_encodes_like_hf_tokenizers_with_the_same_vocab_and_merges(bpe):
    """Oracle: the `tokenizers` package's BPE model with GPT-2's byte-level pre-tokenizer."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, pre_tokenizers

    hf = HFTokenizer(models.BPE(vocab=bpe.vocab, merges=list(bpe.merges)))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    samples = [
        TRAINING_TEXT[:500],
        "Speak, speak!  You   are\n\nall resolved?'ll 've 123,456.78",
        "wörds 日本語 🎉 mixed\ttabs and    spaces   ",
    ]
    for text in samples:
        assert bpe.encode(text) == hf.encode(text).ids


def test_bpe_from_gpt2_style_files_matches_the_pattern_default():
    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    vocab["Ġt"], vocab["Ġth"] = 256, 257
    tokenizer = ByteLevelBPE(vocab, [("Ġ", "t"), ("Ġt", "h")], GPT2_PATTERN)
    assert tokenizer.encode(" the")[0] == 257
    assert tokenizer.decode(tokenizer.encode(" the")) == " the"


# -- JSON -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_save_load_round_trips_through_json(kind, bpe, char_tokenizer, tmp_path):
    tokenizer = bpe if kind == "bpe" else char_tokenizer
    path = tmp_path / "tokenizer.json"
    tokenizer.save(path)
    assert json.loads(path.read_text(encoding="utf-8"))["type"] == kind
    loaded = Tokenizer.load(path)
    assert type(loaded) is type(tokenizer)
    assert loaded.to_dict() == tokenizer.to_dict()
    assert loaded.encode(TRAINING_TEXT[:200]) == tokenizer.encode(TRAINING_TEXT[:200])


def test_unknown_tokenizer_type_is_an_error():
    with pytest.raises(TokenizerError, match="unknown tokenizer type 'no-such-kind'"):
        Tokenizer.from_dict({"type": "no-such-kind"})


def test_unreadable_tokenizer_file_is_an_error(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text('{"type": "char", "chars"')
    with pytest.raises(TokenizerError, match="tokenizer file .* is not valid JSON"):
        Tokenizer.load(path)


def test_bpe_trains_on_the_bundled_megabyte_and_round_trips_it():
    from tinyllm.data import load_text

    text = load_text()
    tokenizer = ByteLevelBPE.train(text, vocab_size=384)
    part = text[:200_000]
    ids = tokenizer.encode(part)
    assert tokenizer.vocab_size == 384
    assert len(ids) < 0.6 * len(part)
    assert tokenizer.decode(ids) == part
