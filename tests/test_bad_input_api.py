"""Bad input to the public API (configs, models, generation, tokenizers): every case is a typed
error naming the argument and the problem, in bounded time and memory (see bad_input.py)."""

import math

import numpy as np
import pytest
from bad_input import expect_typed_error

import tinyllm as tl
from tinyllm.errors import ArgumentError, ConfigError, DTypeError, OutOfRangeError, ShapeError, TokenizerError
from tinyllm.models import GPT, GPTConfig
from tinyllm.models.bert import BERT, BertConfig
from tinyllm.models.generation import generate, sample_next, stream
from tinyllm.models.llama import Llama, LlamaConfig
from tinyllm.nn import functional as F
from tinyllm.tokenizers import ByteLevelBPE, CharTokenizer, Tokenizer
from tinyllm.tokenizers.chat_template import render_chat_template
from tinyllm.train import TrainConfig

GPT_OK = dict(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)
LLAMA_OK = dict(vocab_size=11, block_size=8, n_layer=1, n_embd=8, n_head=2, n_kv_head=1, ffn_dim=16)
BERT_OK = dict(vocab_size=11, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)

# -- configs: (overrides, field named in the message) -----------------------------------------------
GPT_CASES = [
    ({"vocab_size": 0}, "vocab_size"),
    ({"vocab_size": -1}, "vocab_size"),
    ({"vocab_size": 1.5}, "vocab_size"),
    ({"vocab_size": "11"}, "vocab_size"),
    ({"vocab_size": True}, "vocab_size"),
    ({"vocab_size": None}, "vocab_size"),
    ({"vocab_size": 2**40}, "vocab_size"),
    ({"block_size": 0}, "block_size"),
    ({"block_size": 2**30}, "block_size"),
    ({"n_layer": 0}, "n_layer"),
    ({"n_layer": 10**6}, "n_layer"),
    ({"n_head": 0}, "n_head"),
    ({"n_embd": 0}, "n_embd"),
    ({"n_embd": 9}, "divisible"),
    ({"dropout": -0.1}, "dropout"),
    ({"dropout": 1.0}, "dropout"),
    ({"dropout": math.nan}, "dropout"),
    ({"dropout": "0.1"}, "dropout"),
    ({"activation": "relu"}, "activation"),
    ({"positional": "rope"}, "positional"),
    ({"layer_norm_eps": 0.0}, "layer_norm_eps"),
    ({"layer_norm_eps": math.nan}, "layer_norm_eps"),
    ({"bias": "yes"}, "bias"),
    ({"tie_embeddings": 1}, "tie_embeddings"),
]
LLAMA_CASES = [
    ({"vocab_size": 0}, "vocab_size"),
    ({"block_size": 2**40}, "block_size"),
    ({"block_size": -8}, "block_size"),
    ({"n_layer": 0}, "n_layer"),
    ({"n_embd": 1.5}, "n_embd"),
    ({"n_head": 0}, "n_head"),
    ({"n_kv_head": 0}, "n_kv_head"),
    ({"n_head": 3, "n_kv_head": 2}, "n_kv_head"),
    ({"head_dim": 3}, "head_dim"),
    ({"ffn_dim": 2**30}, "ffn_dim"),
    ({"rope_base": 0.0}, "rope_base"),
    ({"norm_eps": -1.0}, "norm_eps"),
    ({"norm_eps": math.inf}, "norm_eps"),
    ({"tie_embeddings": "no"}, "tie_embeddings"),
]
BERT_CASES = [
    ({"vocab_size": 0}, "vocab_size"),
    ({"hidden_size": 9}, "divisible"),
    ({"num_hidden_layers": -1}, "num_hidden_layers"),
    ({"intermediate_size": 2**30}, "intermediate_size"),
    ({"max_position_embeddings": 0}, "max_position_embeddings"),
    ({"hidden_act": "swish2"}, "hidden_act"),
    ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob"),
    ({"layer_norm_eps": 0.0}, "layer_norm_eps"),
    ({"pad_token_id": 11}, "pad_token_id"),
]
TRAIN_CASES = [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": -1}, "batch_size"),
    ({"batch_size": 1.5}, "batch_size"),
    ({"max_iters": -1}, "max_iters"),
    ({"grad_accum_steps": 0}, "grad_accum_steps"),
    ({"optimizer": "adam"}, "optimizer"),
    ({"lr": -1.0}, "lr"),
    ({"lr": 0.0}, "lr"),
    ({"lr": math.nan}, "lr"),
    ({"lr": math.inf}, "lr"),
    ({"lr": "0.1"}, "lr"),
    ({"min_lr": -1.0}, "min_lr"),
    ({"warmup_iters": -1}, "warmup_iters"),
    ({"lr_decay_iters": 0}, "lr_decay_iters"),
    ({"weight_decay": -0.1}, "weight_decay"),
    ({"beta1": 1.5}, "beta1"),
    ({"beta1": -0.1}, "beta1"),
    ({"beta2": 1.0}, "beta2"),
    ({"momentum": 1.5}, "momentum"),
    ({"grad_clip": -1.0}, "grad_clip"),
    ({"grad_clip": math.nan}, "grad_clip"),
    ({"eval_interval": 0}, "eval_interval"),
    ({"eval_iters": 0}, "eval_iters"),
    ({"log_interval": 0}, "log_interval"),
    ({"checkpoint_interval": 0}, "checkpoint_interval"),
    ({"checkpoint_interval": -5}, "checkpoint_interval"),
    ({"seed": 1.5}, "seed"),
    ({"val_fraction": 0.0}, "val_fraction"),
    ({"val_fraction": 1.0}, "val_fraction"),
    ({"tokenizer": "word"}, "tokenizer"),
    ({"bpe_vocab_size": 100}, "bpe_vocab_size"),
    ({"device": ""}, "device"),
    ({"data": ""}, "data"),
]


@pytest.mark.parametrize("overrides,named", GPT_CASES)
def test_bad_gpt_config(overrides, named):
    expect_typed_error(lambda: GPTConfig(**{**GPT_OK, **overrides}), ConfigError, named)


@pytest.mark.parametrize("overrides,named", LLAMA_CASES)
def test_bad_llama_config(overrides, named):
    expect_typed_error(lambda: LlamaConfig(**{**LLAMA_OK, **overrides}), ConfigError, named)


@pytest.mark.parametrize("overrides,named", BERT_CASES)
def test_bad_bert_config(overrides, named):
    expect_typed_error(lambda: BertConfig(**{**BERT_OK, **overrides}), ConfigError, named)


@pytest.mark.parametrize("overrides,named", TRAIN_CASES)
def test_bad_train_config(overrides, named):
    expect_typed_error(lambda: TrainConfig(**overrides), ConfigError, named)


@pytest.mark.parametrize("data,named", [({**GPT_OK, "n_hidden": 3}, "n_hidden"), ({"vocab_size": 11}, "block_size")])
def test_bad_config_dict(data, named):
    expect_typed_error(lambda: GPTConfig.from_dict(data), ConfigError, named)


# -- generation ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gpt():
    tl.manual_seed(0)
    return GPT(GPTConfig(**GPT_OK))


GENERATE_CASES = [
    ({"temperature": math.nan}, ArgumentError, "temperature"),
    ({"temperature": -1.0}, ArgumentError, "temperature"),
    ({"temperature": math.inf}, ArgumentError, "temperature"),
    ({"temperature": "hot"}, ArgumentError, "temperature"),
    ({"temperature": None}, ArgumentError, "temperature"),
    ({"top_k": 0}, ArgumentError, "top_k"),
    ({"top_k": -1}, ArgumentError, "top_k"),
    ({"top_k": 2.5}, ArgumentError, "top_k"),
    ({"top_k": True}, ArgumentError, "top_k"),
    ({"top_p": 0.0}, ArgumentError, "top_p"),
    ({"top_p": 1.5}, ArgumentError, "top_p"),
    ({"top_p": -0.1}, ArgumentError, "top_p"),
    ({"top_p": math.nan}, ArgumentError, "top_p"),
    ({"min_p": -0.1}, ArgumentError, "min_p"),
    ({"min_p": 1.5}, ArgumentError, "min_p"),
    ({"min_p": math.nan}, ArgumentError, "min_p"),
    ({"repetition_penalty": 0.0}, ArgumentError, "repetition_penalty"),
    ({"repetition_penalty": -1.0}, ArgumentError, "repetition_penalty"),
    ({"repetition_penalty": math.nan}, ArgumentError, "repetition_penalty"),
    ({"max_new_tokens": -5}, ArgumentError, "max_new_tokens"),
    ({"max_new_tokens": 2.5}, ArgumentError, "max_new_tokens"),
    ({"max_new_tokens": "10"}, ArgumentError, "max_new_tokens"),
    ({"max_new_tokens": None}, ArgumentError, "max_new_tokens"),
    ({"num_return_sequences": 0}, ArgumentError, "num_return_sequences"),
    ({"num_return_sequences": -1}, ArgumentError, "num_return_sequences"),
    ({"num_return_sequences": 1.5}, ArgumentError, "num_return_sequences"),
    ({"seed": 1.5}, ArgumentError, "seed"),
    ({"seed": "x"}, ArgumentError, "seed"),
    ({"stop": "a"}, ArgumentError, "stop"),
    ({"stop": [-1]}, ArgumentError, "stop[0]"),
    ({"stop": [1.5]}, ArgumentError, "stop[0]"),
    ({"stop": object()}, ArgumentError, "stop"),
    ({"stop_strings": [""]}, ArgumentError, "stop_strings[0]"),
    ({"stop_strings": [3]}, ArgumentError, "stop_strings[0]"),
    ({"stop_strings": ["\n"]}, ArgumentError, "tokenizer"),
    ({"ids": []}, ShapeError, "at least one token"),
    ({"ids": [[]]}, ShapeError, "at least one token"),
    ({"ids": [[1], []]}, ShapeError, "prompt 1"),
    ({"ids": [1.5, 2.0]}, DTypeError, "integers"),
    ({"ids": [[1, 2], [3.5]]}, DTypeError, "integers"),
    ({"ids": np.zeros((1, 2, 3), dtype=np.int64)}, ShapeError, "shape"),
    ({"ids": [1, 11]}, OutOfRangeError, "token id 11"),
    ({"ids": [-1, 2]}, OutOfRangeError, "token id -1"),
    ({"ids": list(range(9))}, ShapeError, "context length 8"),
    ({"ids": ["a", "b"]}, DTypeError, "integers"),
]


@pytest.mark.parametrize("options,error,named", GENERATE_CASES)
def test_bad_generate_arguments(gpt, options, error, named):
    options = dict(options)
    ids = options.pop("ids", [1, 2])
    max_new_tokens = options.pop("max_new_tokens", 2)
    expect_typed_error(lambda: generate(gpt, ids, max_new_tokens, **options), error, named)


@pytest.mark.parametrize(
    "ids,options,error,named",
    [
        ([[1], [2]], {}, ShapeError, "one prompt"),
        ([1], {"temperature": -0.5}, ArgumentError, "temperature"),
        ([1], {"max_new_tokens": -1}, ArgumentError, "max_new_tokens"),
        ([12], {}, OutOfRangeError, "token id 12"),
    ],
)
def test_bad_stream_arguments(gpt, ids, options, error, named):
    options = dict(options)
    max_new_tokens = options.pop("max_new_tokens", 2)
    expect_typed_error(lambda: list(stream(gpt, ids, max_new_tokens, **options)), error, named)


@pytest.mark.parametrize(
    "logits,options,error,named",
    [
        (np.zeros(4), {}, ShapeError, "(batch, vocab)"),
        (np.zeros((1, 0)), {}, ShapeError, "vocab"),
        (np.zeros((1, 4)), {"temperature": math.nan}, ArgumentError, "temperature"),
        (np.zeros((1, 4)), {"top_k": 0}, ArgumentError, "top_k"),
    ],
)
def test_bad_sample_next_arguments(logits, options, error, named):
    expect_typed_error(lambda: sample_next(logits, **options), error, named)


# -- model inputs -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def llama():
    tl.manual_seed(0)
    return Llama(LlamaConfig(**LLAMA_OK))


@pytest.fixture(scope="module")
def bert():
    tl.manual_seed(0)
    return BERT(BertConfig(**BERT_OK, max_position_embeddings=8))


DECODER_INPUTS = [
    (np.ones((1, 3), dtype=np.float32), DTypeError, "integer"),
    (np.ones((1, 2, 3), dtype=np.int64), ShapeError, "shape"),
    (np.ones((1, 0), dtype=np.int64), ShapeError, "empty"),
    (np.ones((1, 9), dtype=np.int64), ShapeError, "8"),
    (np.array([[1, -1]]), OutOfRangeError, "token id -1"),
    (np.array([[1, 11]]), OutOfRangeError, "token id 11"),
]


@pytest.mark.parametrize("ids,error,named", DECODER_INPUTS)
def test_bad_gpt_input(gpt, ids, error, named):
    expect_typed_error(lambda: gpt(tl.tensor(ids)), error, named)


@pytest.mark.parametrize("ids,error,named", DECODER_INPUTS)
def test_bad_llama_input(llama, ids, error, named):
    expect_typed_error(lambda: llama(tl.tensor(ids)), error, named)


@pytest.mark.parametrize(
    "kwargs,error,named",
    [
        ({"input_ids": [[1, 11]]}, OutOfRangeError, "input_ids"),
        ({"input_ids": [[1.0, 2.0]]}, DTypeError, "input_ids"),
        ({"input_ids": [[1] * 9]}, ShapeError, "max_position_embeddings"),
        ({"input_ids": [[1, 2]], "attention_mask": [[1, 2]]}, OutOfRangeError, "attention_mask"),
        ({"input_ids": [[1, 2]], "attention_mask": [[1, -1]]}, OutOfRangeError, "attention_mask"),
        ({"input_ids": [[1, 2]], "attention_mask": [[1, 1, 1]]}, ShapeError, "attention_mask"),
        ({"input_ids": [[1, 2]], "attention_mask": [[0.5, 1.0]]}, DTypeError, "attention_mask"),
        ({"input_ids": [[1, 2]], "token_type_ids": [[0, 2]]}, OutOfRangeError, "token_type_ids"),
        ({"input_ids": np.zeros((1, 0), dtype=np.int64)}, ShapeError, "empty"),
    ],
)
def test_bad_bert_input(bert, kwargs, error, named):
    expect_typed_error(lambda: bert(**kwargs), error, named)


def test_an_integer_attention_mask_outside_0_1_is_an_error():
    q = tl.tensor(np.zeros((1, 1, 2, 4), dtype=np.float32))
    mask = tl.tensor(np.array([[1, 2]]))
    expect_typed_error(lambda: F.scaled_dot_product_attention(q, q, q, attn_mask=mask), OutOfRangeError, "attn_mask")


def test_an_integer_attention_mask_means_keep_and_drop_as_a_bool_mask():
    q = tl.tensor(np.random.default_rng(0).normal(size=(1, 1, 3, 4)).astype(np.float32))
    as_int = F.scaled_dot_product_attention(q, q, q, attn_mask=tl.tensor(np.array([[1, 0, 1]]))).numpy()
    as_bool = F.scaled_dot_product_attention(q, q, q, attn_mask=tl.tensor(np.array([[True, False, True]]))).numpy()
    np.testing.assert_array_equal(as_int, as_bool)


# -- tokenizers -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bpe():
    return ByteLevelBPE.train("the cat sat on the mat " * 20, 270)


TOKENIZER_CASES = [
    (lambda: CharTokenizer.from_text("abc").encode("abd"), TokenizerError, "'d'"),
    (lambda: CharTokenizer.from_text("abc").decode([3]), TokenizerError, "token id 3"),
    (lambda: CharTokenizer.from_text("abc").decode([-1]), TokenizerError, "token id -1"),
    (lambda: CharTokenizer.from_text(""), TokenizerError, "empty"),
    (lambda: CharTokenizer(["a", "a"]), TokenizerError, "duplicates"),
    (lambda: ByteLevelBPE.train("abc", 100), TokenizerError, "vocab_size 100"),
    (lambda: ByteLevelBPE({"a": 0}, [("a", "b")]), TokenizerError, "merge 0"),
    (lambda: ByteLevelBPE({"a": 0}, [], pattern="("), TokenizerError, "does not compile"),
    (lambda: ByteLevelBPE({"a": 0}, [], pattern="a" * 2000), TokenizerError, "at most"),
    (lambda: ByteLevelBPE({"a": 0}, [], pattern=5), TokenizerError, "pattern"),
    (lambda: ByteLevelBPE({"a": 0}, [], pattern=r"(a|aa)+$").encode("a" * 60 + "!"), TokenizerError, "took longer"),
    (lambda: ByteLevelBPE({"a": 0}, [], pattern=r"(x+x+)+y").encode("x" * 40), TokenizerError, "does not cover"),
    (lambda: ByteLevelBPE({"a": 0}, [], pattern=r"a").encode("ab"), TokenizerError, "does not cover"),
    (lambda: Tokenizer.from_dict({"type": "sentencepiece"}), TokenizerError, "sentencepiece"),
    (lambda: Tokenizer.from_dict(["not", "a", "dict"]), TokenizerError, "unknown tokenizer type"),
    (lambda: render_chat_template("{% for %}", [{"role": "user", "content": "x"}]), TokenizerError, "parse"),
    (lambda: render_chat_template("{{ raise_exception('no') }}", []), TokenizerError, "no"),
    (lambda: render_chat_template("x", [{"role": "user"}]), TokenizerError, "message 0"),
    (lambda: render_chat_template("x", ["hello"]), TokenizerError, "message 0"),
    (lambda: render_chat_template("{% for i in range(10**9) %}{% endfor %}", []), TokenizerError, "range"),
    (lambda: render_chat_template("{{ 'a' * 10**9 }}", []), TokenizerError, "chat template"),
    (lambda: render_chat_template("x" * 2_000_000, []), TokenizerError, "characters"),
    (lambda: render_chat_template("{{ 9 ** (9 ** 9) }}", []), TokenizerError, "too large"),
    (
        lambda: render_chat_template(
            "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}", []
        ),
        TokenizerError,
        "longer than",
    ),
    (
        lambda: render_chat_template("{% for i in range(99999) %}{{ 'x' * 99 }}{% endfor %}", []),
        TokenizerError,
        "chat template",
    ),
]


@pytest.mark.parametrize("call,error,named", TOKENIZER_CASES)
def test_bad_tokenizer_input(call, error, named):
    expect_typed_error(call, error, named)


@pytest.mark.parametrize("ids", [[-1], [10**9], [2**70]])
def test_bad_bpe_decode(bpe, ids):
    expect_typed_error(lambda: bpe.decode(ids), TokenizerError, "token id")


def test_a_long_word_encodes_in_linear_time(bpe):
    # 32,000 letters took 37 s with the quadratic merge loop; a heap makes it a fraction of a second
    import time

    started = time.perf_counter()
    ids = bpe.encode("a" * 32_000)
    assert time.perf_counter() - started < 2.0
    assert bpe.decode(ids) == "a" * 32_000
