"""GPT-2 import: a seeded random transformers GPT2LMHeadModel saved as safetensors and loaded by
tinyllm gives the same logits and greedy tokens; GPT-2's tokenizer gives tiktoken's ids (and,
written as vocab.json + merges.txt, transformers' ids)."""

import json

import numpy as np
import pytest
import tiktoken
import torch
from hypothesis import given
from hypothesis import strategies as st
from tiktoken.load import load_tiktoken_bpe

import tinyllm as tl
from tinyllm.errors import ConfigError
from tinyllm.hub import download
from tinyllm.models import GPT
from tinyllm.models.gpt2 import load_gpt2
from tinyllm.tokenizers.gpt2_tokenizer import (
    END_OF_TEXT,
    load_gpt2_tokenizer,
    read_tiktoken_ranks,
    vocab_and_merges_from_ranks,
)

GPT2_SPLIT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
FIXED_TEXTS = [
    "Hello world!",
    "It's 2024 and we'll see: 3.14159 is pi.",
    "  spaces   everywhere  \n\n\tand tabs",
    "naïve café, 日本語, Ελληνικά, 🤖🚀",
    "def f(x):\n    return x ** 2\n",
    "a" * 50 + " " + "ab" * 20,
]


def hf_gpt2(directory, seed: int = 0, **overrides):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=101, n_positions=32, n_embd=64, n_layer=2, n_head=4, **overrides)
    model = GPT2LMHeadModel(config).eval()
    model.save_pretrained(directory, safe_serialization=True)
    return model


@pytest.mark.parametrize("tied", [True, False])
def test_loaded_gpt2_gives_transformers_logits(tmp_path, tied):
    reference = hf_gpt2(tmp_path, tie_word_embeddings=tied)
    model = GPT.from_pretrained(tmp_path)
    assert model.config.activation == "gelu_tanh" and model.config.tie_embeddings == tied
    ids = np.random.default_rng(0).integers(0, 101, size=(2, 17))
    with tl.no_grad():
        ours = model(tl.tensor(ids)).numpy()
    with torch.no_grad():
        theirs = reference(torch.from_numpy(ids)).logits.numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)


def test_loaded_gpt2_greedy_tokens_match_transformers(tmp_path):
    reference = hf_gpt2(tmp_path, seed=1)
    model = load_gpt2(tmp_path)
    prompt = [5, 17, 42, 8]
    ours = model.generate(prompt, max_new_tokens=12, temperature=0.0)[0]
    with torch.no_grad():
        theirs = reference.generate(
            torch.tensor([prompt]), max_new_tokens=12, min_new_tokens=12, do_sample=False, pad_token_id=0
        )
    assert ours == theirs[0].tolist()


def test_missing_gpt2_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="config.json"):
        load_gpt2(tmp_path)
    hf_gpt2(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ConfigError, match="model.safetensors"):
        load_gpt2(tmp_path)


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(model_type="llama"), "model_type"),
        (dict(n_inner=100), "n_inner"),
        (dict(activation_function="relu"), "relu"),
        (dict(scale_attn_by_inverse_layer_idx=True), "scale_attn_by_inverse_layer_idx"),
    ],
)
def test_gpt2_configs_gpt_cannot_express_are_config_errors(tmp_path, change, message):
    hf_gpt2(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ConfigError, match=message):
        load_gpt2(tmp_path)


# -- the tokenizer ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiktoken_path():
    return download("gpt2-tokenizer", quiet=True) / "gpt2.tiktoken"


@pytest.fixture(scope="module")
def tokenizer(tiktoken_path):
    return load_gpt2_tokenizer(tiktoken_path)


@pytest.fixture(scope="module")
def encoding(tiktoken_path):
    ranks = load_tiktoken_bpe(str(tiktoken_path))
    return tiktoken.Encoding(
        "gpt2_local", pat_str=GPT2_SPLIT, mergeable_ranks=ranks, special_tokens={END_OF_TEXT: 50256}
    )


@pytest.mark.parametrize("text", FIXED_TEXTS)
def test_gpt2_tokenizer_gives_tiktoken_ids(tokenizer, encoding, text):
    assert tokenizer.encode(text) == encoding.encode_ordinary(text)


@given(st.text(max_size=80))
def test_gpt2_tokenizer_gives_tiktoken_ids_on_drawn_text(tokenizer, encoding, text):
    assert tokenizer.encode(text) == encoding.encode(text, allowed_special="all")
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_end_of_text_is_one_special_token(tokenizer, encoding):
    text = f"first document{END_OF_TEXT}second"
    assert tokenizer.encode(text) == encoding.encode(text, allowed_special="all")
    assert 50256 in tokenizer.encode(text) and tokenizer.vocab_size == 50257


def test_vocab_json_and_merges_txt_give_the_same_ids_as_transformers(tmp_path, tiktoken_path, tokenizer):
    """The merges recovered from the ranks, written in the Hugging Face spelling, read back by us
    and by transformers' GPT-2 tokenizer: all agree."""
    from transformers import GPT2TokenizerFast

    vocab, merges = vocab_and_merges_from_ranks(read_tiktoken_ranks(tiktoken_path))
    assert len(merges) == 50000
    (tmp_path / "vocab.json").write_text(json.dumps({**vocab, END_OF_TEXT: 50256}), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges), encoding="utf-8")
    from_files = load_gpt2_tokenizer(tmp_path)
    reference = GPT2TokenizerFast.from_pretrained(tmp_path)
    for text in FIXED_TEXTS:
        assert from_files.encode(text) == tokenizer.encode(text) == reference(text)["input_ids"]


def test_missing_tokenizer_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="no GPT-2 tokenizer"):
        load_gpt2_tokenizer(tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        load_gpt2_tokenizer(tmp_path / "gpt2.tiktoken")
