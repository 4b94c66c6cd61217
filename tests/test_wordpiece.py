"""WordPiece tokenizer: ids identical to transformers' BertTokenizer on MiniLM's vocab.txt."""

import re
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyllm as tl
from tinyllm.errors import TokenizerError
from tinyllm.tokenizers import Tokenizer, WordPieceTokenizer

pytest_plugins = ["wordpiece_fixtures"]

FIXED_TEXTS = [
    "Hello, world!",
    "Café déjà vu — naïve façade, São Paulo, Ångström, Ørsted",
    "ÀÉÎÕÜ àéîõü ñ ç ß œ æ İstanbul",
    "我爱北京天安门。日本語のテキスト、한국어 텍스트",
    "emoji 😀🎉👍🏽 party 🇫🇷 ❤️",
    "Punctuation!!! (parentheses) [brackets] {braces} <angle> «guillemets» „quotes“ ¿qué? ¡sí!",
    "don't $5.00 #hash @handle ^caret `tick` a+b=c 50% ~tilde | pipe \\ back",
    "unaffable antidisestablishmentarianism supercalifragilisticexpialidocious tokenization",
    "a" * 100,  # exactly the longest word WordPiece splits
    "a" * 101 + " word",  # one character too many: [UNK]
    "ΑΣ Σοφία ΟΔΥΣΣΕΥΣ",  # Greek capitals, final sigma
    "tabs\tnewlines\nreturns\r\nnbsp\u00a0thin\u2009ideographic\u3000space",
    "zero\u200bwidth\u200dzwj soft\u00adhyphen nul\x00 bell\x07 private\ue000use replacement\ufffd",
    "[MASK] is a [SEP]special[CLS] token, [mask] is not",
    "numbers 3.14159 1,000,000 2nd 3rd 42nd 1e-10",
    "",
    "   \t\n  ",
]


DRIFT_CATEGORIES = ("Mn", "Mc", "Me", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Cf", "So")


@pytest.fixture(scope="module")
def unicode_drift(tokenizer, reference):
    """Code points whose single-character tokenization differs from transformers'.

    They exist because Python's unicodedata and the Rust crate behind BertTokenizer use
    different Unicode versions for marks, punctuation and format characters (characters added
    in recent versions). A one-off scan of all 1.1M code points found disagreements only in
    these categories, so only they are scanned here.
    """
    chars = [
        chr(cp)
        for cp in range(sys.maxunicode + 1)
        if not 0xD800 <= cp <= 0xDFFF and unicodedata.category(chr(cp)) in DRIFT_CATEGORIES
    ]
    texts = [f"a{c}b" for c in chars]
    encoded = reference.backend_tokenizer.encode_batch(texts)
    return frozenset(c for c, text, ref in zip(chars, texts, encoded) if tokenizer.encode(text) != ref.ids)


@pytest.mark.parametrize("text", FIXED_TEXTS)
def test_fixed_texts_give_the_ids_of_transformers(tokenizer, reference, text):
    assert tokenizer(text)["input_ids"] == reference(text)["input_ids"]


def test_long_words_split_into_continuation_pieces(tokenizer):
    assert tokenizer.tokenize("unaffable") == ["una", "##ffa", "##ble"]
    assert tokenizer.tokenize("a" * 101) == ["[UNK]"]
    pieces = tokenizer.tokenize("antidisestablishmentarianism")
    assert len(pieces) > 3 and all(p.startswith("##") for p in pieces[1:])


def test_accents_are_stripped_and_case_folded(tokenizer):
    assert tokenizer.tokenize("Café NAÏVE") == tokenizer.tokenize("cafe naive")


def test_cjk_characters_become_single_tokens(tokenizer):
    assert tokenizer.tokenize("北京") == ["北", "京"]


@pytest.mark.parametrize("max_length", [5, 8, 13, 32])
def test_batches_of_pairs_with_padding_and_truncation_match(tokenizer, reference, max_length):
    first = ["A short one.", "This first sentence is a good deal longer than the other one", "日本語", ""]
    second = ["and a much longer second sentence that needs cutting", "short", "😀 emoji", "x y z"]
    ours = tokenizer(first, second, padding=True, truncation=True, max_length=max_length)
    theirs = reference(first, second, padding=True, truncation=True, max_length=max_length)
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert ours[key] == theirs[key], key


def test_over_long_input_is_truncated_to_the_model_maximum(tokenizer, reference):
    text = " ".join(["tokenization"] * 600)
    ours = tokenizer(text, truncation=True)["input_ids"]
    assert len(ours) == 512 and ours[-1] == tokenizer.sep_token_id
    assert ours == reference(text, truncation=True)["input_ids"]
    assert (
        tokenizer([text], truncation=True, max_length=10)["input_ids"]
        == reference([text], truncation=True, max_length=10)["input_ids"]
    )


def test_padding_to_max_length_and_tensors(tokenizer):
    encoding = tokenizer(["one", "two three"], padding="max_length", max_length=6, return_tensors="tl")
    assert isinstance(encoding.input_ids, tl.Tensor) and encoding.input_ids.shape == (2, 6)
    np.testing.assert_array_equal(encoding.attention_mask.numpy(), [[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0]])
    assert encoding["input_ids"].numpy()[0, 3:].tolist() == [tokenizer.pad_token_id] * 3


PINNED_DRIFT = Path(__file__).parent / "data" / "wordpiece_unicode_drift.txt"


def pinned_drift() -> tuple[str, frozenset]:
    """Return (unicodedata version, code points) of the checked-in list of known disagreements."""
    lines = PINNED_DRIFT.read_text(encoding="utf-8").splitlines()
    version = re.search(r"unicodedata (\S+)\)", "".join(lines[:5])).group(1)
    return version, frozenset(chr(int(line.split()[0][2:], 16)) for line in lines if line.startswith("U+"))


def test_unicode_drift_is_exactly_the_pinned_list(unicode_drift):
    """A new disagreement with transformers fails here instead of being left out of the
    properties' alphabet; so does one that went away (the list is then out of date)."""
    version, pinned = pinned_drift()
    if unicodedata.unidata_version != version:
        pytest.skip(f"the list is pinned for unicodedata {version}, this Python has {unicodedata.unidata_version}")
    assert not pinned & set("àéü—«»¿¡!?.,;:'\"()[]{}-_\u0301\u0308\u200b\u00ad")
    new, gone = sorted(unicode_drift - pinned), sorted(pinned - unicode_drift)
    assert not new, f"new disagreements with transformers: {[f'U+{ord(c):04X}' for c in new]}"
    assert not gone, f"pinned disagreements that went away: {[f'U+{ord(c):04X}' for c in gone]}"


_WORDS = st.sampled_from(["[MASK]", "[SEP]", "[CLS]", "##", " ", "don't", "unaffable", "Café", "北京", "😀", "a" * 101])


def _texts():
    """Text of any characters but the pinned disagreements (the scan above checks the list)."""
    alphabet = st.characters(exclude_categories=("Cs",), exclude_characters=pinned_drift()[1])
    return st.lists(st.one_of(st.text(alphabet, max_size=12), _WORDS), max_size=8).map("".join)


@given(data=st.data())
def test_hypothesis_text_gives_the_ids_of_transformers(tokenizer, reference, data):
    text = data.draw(_texts(), label="text")
    assert tokenizer(text)["input_ids"] == reference(text)["input_ids"]


@given(data=st.data())
def test_hypothesis_pairs_truncate_as_transformers(tokenizer, reference, data):
    first = data.draw(_texts(), label="first")
    second = data.draw(_texts(), label="second")
    max_length = data.draw(st.integers(3, 24), label="max_length")
    # as a batch of one: transformers drops an empty *single* text_pair (a truthiness check), we do not
    ours = tokenizer([first], [second], truncation=True, max_length=max_length)
    theirs = reference([first], [second], truncation=True, max_length=max_length)
    assert ours["input_ids"] == theirs["input_ids"]
    assert ours["token_type_ids"] == theirs["token_type_ids"]


def test_decode_inverts_encode_on_plain_lowercase_text(tokenizer):
    text = "the quick brown fox, unaffable as ever, didn't jump!"
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_saved_tokenizer_loads_back(tokenizer, tmp_path):
    tokenizer.save(tmp_path / "tokenizer.json")
    loaded = Tokenizer.load(tmp_path / "tokenizer.json")
    assert isinstance(loaded, WordPieceTokenizer)
    assert loaded.encode("Café 北京 unaffable") == tokenizer.encode("Café 北京 unaffable")


def test_vocabulary_without_special_tokens_is_rejected():
    with pytest.raises(TokenizerError, match=r"\[MASK\]"):
        WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello"])


def test_ragged_batch_cannot_become_an_array(tokenizer):
    with pytest.raises(TokenizerError, match="padding=True"):
        tokenizer(["one", "two three"], return_tensors="np")


def test_missing_vocab_file_names_it(tmp_path):
    with pytest.raises(TokenizerError, match="vocab.txt"):
        WordPieceTokenizer.from_file(tmp_path / "vocab.txt")
