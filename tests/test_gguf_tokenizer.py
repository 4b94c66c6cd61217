"""The SmolLM2 tokenizer built from GGUF metadata: the same ids as transformers' tokenizer from
the same file (a fixed list and hypothesis-drawn text), decoding, and the chat template rendered
exactly as transformers renders it."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyllm.errors import ConfigError, TokenizerError
from tinyllm.hub import download
from tinyllm.tokenizers.base import Tokenizer
from tinyllm.tokenizers.gguf_tokenizer import GGUFTokenizer

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

FIXED_TEXTS = [
    "",
    "Hello, world!",
    "The capital of France is",
    "  leading spaces and trailing   ",
    "a  1 and 12345 and 3.14159, x2",
    "don't won't I'm you're they've we'll he'd",
    "tabs\tand\nnewlines\n\n\r\n and more",
    "Ünïcödé: naïve café, 日本語のテキスト, Ελληνικά, русский, emoji 🤖🚀👍🏽",
    "def f(x):\n    return x ** 2  # square\n",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    " <|im_end|> x<|endoftext|>y",
    "control bytes \x00\x04\x7f and a rare plane \U00040000",
    "https://example.com/path?query=1&b=2 #hashtag @mention",
]

CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Name a prime number  \n with two digits."},
    ],
    [{"role": "user", "content": ""}],
]


@pytest.fixture(scope="module")
def smollm2_dir():
    return download("smollm2", quiet=True)


@pytest.fixture(scope="module")
def tokenizer(smollm2_dir):
    return GGUFTokenizer.from_gguf(smollm2_dir / GGUF_NAME)


@pytest.fixture(scope="module")
def hf_tokenizer(smollm2_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir, gguf_file=GGUF_NAME)


@pytest.mark.parametrize("text", FIXED_TEXTS)
def test_ids_match_transformers_on_fixed_texts(tokenizer, hf_tokenizer, text):
    assert tokenizer.encode(text) == hf_tokenizer(text)["input_ids"]


@given(st.text(max_size=60))
def test_ids_match_transformers_on_drawn_text(tokenizer, hf_tokenizer, text):
    assert tokenizer.encode(text) == hf_tokenizer(text)["input_ids"]


@given(
    st.lists(
        st.sampled_from(["a", " ", "  ", "1", "7", "\n", "'s", "é", "<|im_end|>", "Hello", ".", "\t"]), max_size=12
    )
)
def test_ids_match_transformers_on_drawn_pieces(tokenizer, hf_tokenizer, pieces):
    text = "".join(pieces)
    assert tokenizer.encode(text) == hf_tokenizer(text)["input_ids"]


@given(st.text(alphabet=st.characters(max_codepoint=0xFFFF, exclude_categories=["Cc", "Cs"]), max_size=60))
def test_decode_inverts_encode(tokenizer, text):
    """SmolLM2's vocab lacks a few control bytes and the UTF-8 lead bytes 0xF1, 0xF2 (planes 4-12),
    which encoding drops as transformers does; every other text round-trips."""
    assert tokenizer.decode(tokenizer.encode(text)) == text


@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_chat_template_renders_as_transformers(tokenizer, hf_tokenizer, messages):
    ours = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    theirs = hf_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert ours == theirs
    assert tokenizer.encode(ours) == hf_tokenizer(theirs)["input_ids"]


def test_special_tokens_and_ids(tokenizer):
    assert (tokenizer.bos_token, tokenizer.eos_token) == ("<|im_start|>", "<|im_end|>")
    assert tokenizer.encode("<|im_end|>") == [tokenizer.eos_id] == [2]
    assert tokenizer.vocab_size == 49152


def test_tokenizer_round_trips_through_its_dict(tokenizer):
    again = Tokenizer.from_dict(tokenizer.to_dict())
    text = "<|im_start|>user\nHow many r's in strawberry? 3<|im_end|>"
    assert again.encode(text) == tokenizer.encode(text)
    assert again.apply_chat_template(CONVERSATIONS[0]) == tokenizer.apply_chat_template(CONVERSATIONS[0])


def test_bad_messages_and_missing_template_are_tokenizer_errors(tokenizer):
    with pytest.raises(TokenizerError, match="role"):
        tokenizer.apply_chat_template([{"content": "no role"}])
    state = tokenizer.to_dict()
    state["chat_template"] = None
    with pytest.raises(TokenizerError, match="no chat template"):
        Tokenizer.from_dict(state).apply_chat_template(CONVERSATIONS[0])


def test_missing_gguf_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        GGUFTokenizer.from_gguf(tmp_path / "absent.gguf")
