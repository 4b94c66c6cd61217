# ruff: noqa: N806 - D, C, T: the field's names for sizes
"""Llama: SmolLM2-135M from GGUF against transformers' LlamaForCausalLM loaded from the same file
(logits, greedy continuations), RoPE, the KV cache, GGUF round trips, and typed errors on bad
input."""

import dataclasses

import gguf
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import tinyllm as tl
from tinyllm.errors import ConfigError, ShapeError
from tinyllm.hub import download
from tinyllm.io.gguf import read_gguf
from tinyllm.models.llama import GatedSiLU, Llama, LlamaConfig, config_from_gguf, unpermute_rotary_rows
from tinyllm.nn.rope import RotaryEmbedding, Rotate, apply_rotary, rotary_tables
from tinyllm.tokenizers.bpe import bytes_to_unicode

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    if n < 2:",
    "<|im_start|>user\nWhat is 12 + 30?<|im_end|>\n<|im_start|>assistant\n",
]


@pytest.fixture(scope="module")
def smollm2_dir():
    return download("smollm2", quiet=True)


@pytest.fixture(scope="module")
def model(smollm2_dir):
    return Llama.from_gguf(smollm2_dir / GGUF_NAME)


@pytest.fixture(scope="module")
def hf_model(smollm2_dir):
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    logging.disable_progress_bar()
    reference = AutoModelForCausalLM.from_pretrained(smollm2_dir, gguf_file=GGUF_NAME, dtype=torch.float32)
    return reference.eval()


def tinyllm_logits(model, ids) -> np.ndarray:
    with tl.no_grad():
        return model(tl.tensor([ids])).numpy()[0]  # (T, V)


def hf_logits(hf_model, ids) -> np.ndarray:
    with torch.no_grad():
        return hf_model(torch.tensor([ids])).logits[0].numpy()  # (T, V)


# -- SmolLM2 against transformers -------------------------------------------------------------
def test_config_is_read_from_gguf_metadata(smollm2_dir):
    config = config_from_gguf(read_gguf(smollm2_dir / GGUF_NAME))
    assert (config.n_layer, config.n_embd, config.n_head, config.n_kv_head, config.head_dim) == (30, 576, 9, 3, 64)
    assert (config.ffn_dim, config.vocab_size, config.rope_base, config.tie_embeddings) == (1536, 49152, 1e5, True)
    assert config.norm_eps == pytest.approx(1e-5)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_logits_match_transformers(model, hf_model, prompt):
    ids = model.tokenizer.encode(prompt)
    ours, theirs = tinyllm_logits(model, ids), hf_logits(hf_model, ids)
    assert ours.shape == theirs.shape == (len(ids), 49152)
    np.testing.assert_allclose(ours, theirs, atol=1e-3, rtol=0)


@pytest.mark.parametrize("prompt", PROMPTS[:2])
def test_greedy_continuation_matches_transformers_for_20_tokens(model, hf_model, prompt):
    ids = model.tokenizer.encode(prompt)
    ours = model.generate(ids, max_new_tokens=20, temperature=0.0)[0]
    with torch.no_grad():
        theirs = hf_model.generate(torch.tensor([ids]), max_new_tokens=20, do_sample=False, min_new_tokens=20)
    assert ours == theirs[0].tolist()


def test_capital_of_france_is_paris(model):
    ids = model.tokenizer.encode("The capital of France is")
    new = model.generate(ids, max_new_tokens=1, temperature=0.0)[0][len(ids) :]
    assert model.tokenizer.decode(new) == " Paris"


def test_cached_decoding_gives_the_logits_of_a_full_forward(model):
    ids = model.tokenizer.encode("Once upon a time, in a small village,")
    full = tinyllm_logits(model, ids)
    cache = model.new_cache()
    with tl.no_grad():
        prefill = model(tl.tensor([ids[:4]]), cache=cache).numpy()[0]  # (4, V)
        steps = [model(tl.tensor([[token]]), cache=cache).numpy()[0, 0] for token in ids[4:]]
    np.testing.assert_allclose(np.concatenate([prefill, np.stack(steps)]), full, atol=1e-4, rtol=0)
    assert cache.position == len(ids)


# -- a small random Llama against transformers' LlamaForCausalLM ------------------------------
SMALL = dict(vocab_size=67, block_size=32, n_layer=2, n_embd=48, n_head=6, n_kv_head=2, ffn_dim=80, rope_base=500.0)


def small_llama(seed: int = 0, **overrides) -> Llama:
    tl.manual_seed(seed)
    model = Llama(LlamaConfig(**{**SMALL, **overrides}))
    for _, param in model.named_parameters():  # norms away from 1, so a wrong weight shows
        param.array = param.array * 0.5 + 0.05 * np.random.default_rng(seed).standard_normal(param.shape, np.float32)
    return model.eval()


def hf_twin(model: Llama):
    """Return transformers' LlamaForCausalLM with the weights of a tinyllm Llama."""
    from transformers import LlamaConfig as HFLlamaConfig
    from transformers import LlamaForCausalLM

    c = model.config
    hf = LlamaForCausalLM(
        HFLlamaConfig(
            vocab_size=c.vocab_size,
            hidden_size=c.n_embd,
            intermediate_size=c.ffn_dim,
            num_hidden_layers=c.n_layer,
            num_attention_heads=c.n_head,
            num_key_value_heads=c.n_kv_head,
            head_dim=c.head_dim,
            max_position_embeddings=c.block_size,
            rms_norm_eps=c.norm_eps,
            rope_theta=c.rope_base,
            tie_word_embeddings=c.tie_embeddings,
        )
    ).eval()
    state = model.state_dict()
    q_rows, kv_rows = c.n_head * c.head_dim, c.n_kv_head * c.head_dim
    theirs = {"model.embed_tokens.weight": state["embed.weight"], "model.norm.weight": state["norm.weight"]}
    for i in range(c.n_layer):
        ours, prefix = f"layers.{i}.", f"model.layers.{i}."
        q, k, v = np.split(state[ours + "attn.qkv_proj.weight"], [q_rows, q_rows + kv_rows])
        gate, up = np.split(state[ours + "mlp.gate_up_proj.weight"], 2)
        theirs.update(
            {
                prefix + "self_attn.q_proj.weight": q,
                prefix + "self_attn.k_proj.weight": k,
                prefix + "self_attn.v_proj.weight": v,
                prefix + "self_attn.o_proj.weight": state[ours + "attn.o_proj.weight"],
                prefix + "mlp.gate_proj.weight": gate,
                prefix + "mlp.up_proj.weight": up,
                prefix + "mlp.down_proj.weight": state[ours + "mlp.down_proj.weight"],
                prefix + "input_layernorm.weight": state[ours + "attn_norm.weight"],
                prefix + "post_attention_layernorm.weight": state[ours + "mlp_norm.weight"],
            }
        )
    if not c.tie_embeddings:
        theirs["lm_head.weight"] = state["lm_head.weight"]
    hf.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in theirs.items()}, strict=False)
    return hf


@pytest.mark.parametrize("n_kv_head", [1, 2, 6])
def test_small_llama_matches_transformers_for_any_grouping(n_kv_head):
    model = small_llama(n_kv_head=n_kv_head, tie_embeddings=n_kv_head != 2)
    ids = np.random.default_rng(1).integers(0, SMALL["vocab_size"], size=(2, 11))
    with tl.no_grad():
        ours = model(tl.tensor(ids)).numpy()
    with torch.no_grad():
        theirs = hf_twin(model)(torch.from_numpy(ids)).logits.numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("n_kv_head", [1, 3])
def test_small_llama_cached_steps_give_the_logits_of_a_full_forward(n_kv_head):
    model = small_llama(n_kv_head=n_kv_head)
    ids = np.random.default_rng(6).integers(0, SMALL["vocab_size"], size=(2, 12))
    cache = model.new_cache()
    with tl.no_grad():
        full = model(tl.tensor(ids)).numpy()
        pieces = [model(tl.tensor(ids[:, :5]), cache=cache).numpy()]
        pieces += [model(tl.tensor(ids[:, t : t + 1]), cache=cache).numpy() for t in range(5, 9)]
        pieces.append(model(tl.tensor(ids[:, 9:]), cache=cache).numpy())
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, atol=1e-5)


def test_gated_silu_gradient_matches_finite_differences():
    gate_up = tl.tensor(np.random.default_rng(7).standard_normal((2, 3, 8)) * 3, dtype="float64", requires_grad=True)
    assert tl.gradcheck(lambda t: GatedSiLU.apply(t), [gate_up])


def test_seeded_sampling_is_reproducible_and_cache_independent():
    model = small_llama()
    options = dict(max_new_tokens=10, temperature=0.9, top_k=20, top_p=0.9, seed=3)
    first = model.generate([1, 2, 3], **options)
    assert first == model.generate([1, 2, 3], **options) == model.generate([1, 2, 3], use_cache=False, **options)
    assert len(first[0]) == 13


def test_small_llama_backward_reaches_every_parameter():
    model = small_llama().train()
    ids = tl.tensor(np.random.default_rng(2).integers(0, SMALL["vocab_size"], size=(1, 9)))
    model(ids).sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and np.isfinite(param.grad.numpy()).all(), name


def test_small_llama_runs_on_the_strict_array_api_backend():
    model = small_llama()
    ids = np.random.default_rng(8).integers(0, SMALL["vocab_size"], size=(1, 7))
    with tl.no_grad():
        expected = model(tl.tensor(ids)).numpy()
    model.to("strict").train()
    logits = model(tl.tensor(ids, device="strict"))
    np.testing.assert_allclose(logits.numpy(), expected, atol=1e-5)
    logits.sum().backward()
    assert model.layers[0].attn.qkv_proj.weight.grad.shape == model.layers[0].attn.qkv_proj.weight.shape


# -- RoPE -------------------------------------------------------------------------------------
def test_rotate_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    cos, sin = rotary_tables(8, 5, base=100.0)
    x = tl.tensor(rng.standard_normal((2, 3, 5, 8)), dtype="float64", requires_grad=True)
    cos64, sin64 = tl.tensor(cos, dtype="float64"), tl.tensor(sin, dtype="float64")
    assert tl.gradcheck(lambda t: Rotate.apply(t, cos64, sin64), [x])


def test_the_rotated_tables_reach_the_last_position_and_refuse_one_more():
    rope = RotaryEmbedding(8, 12, base=100.0)
    cos, sin = rope.tables(9, 3)  # positions 9, 10, 11: the last three of 12
    angles = np.arange(9, 12)[:, None] * 100.0 ** (-np.arange(0, 8, 2) / 8)[None, :]
    np.testing.assert_allclose(cos.numpy(), np.cos(angles), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sin.numpy(), np.sin(angles), rtol=1e-5, atol=1e-6)
    with pytest.raises(tl.ShapeError, match="12 positions"):
        rope.tables(9, 4)


@given(st.integers(0, 40), st.integers(0, 40))
def test_rotated_dot_products_depend_on_relative_position_only(p, s):
    rope = RotaryEmbedding(16, 100, base=1000.0)
    rng = np.random.default_rng(3)
    q, k = (tl.tensor(rng.standard_normal((1, 1, 1, 16)).astype(np.float32)) for _ in range(2))

    def score(query_position, key_position):
        return float((rope(q, query_position) * rope(k, key_position)).sum().item())

    assert score(p, s) == pytest.approx(score(p + 7, s + 7), abs=1e-4)


def test_unpermuted_weights_with_half_rotation_equal_raw_weights_with_adjacent_pairs():
    """GGUF stores W_q for RoPE on pairs (2i, 2i+1); unpermuting its rows gives the same q . k
    with the (i, i + D/2) rotation used here."""
    rng = np.random.default_rng(4)
    n_heads, D, C, T = 3, 8, 12, 5
    raw = rng.standard_normal((n_heads * D, C)).astype(np.float32)
    x = rng.standard_normal((T, C)).astype(np.float32)
    cos, sin = rotary_tables(D, T, base=10000.0)  # (T, D/2)
    q_raw = (x @ raw.T).reshape(T, n_heads, D)
    even, odd = q_raw[..., 0::2], q_raw[..., 1::2]  # adjacent pairs
    adjacent = np.empty_like(q_raw)
    adjacent[..., 0::2] = even * cos[:, None] - odd * sin[:, None]
    adjacent[..., 1::2] = odd * cos[:, None] + even * sin[:, None]
    q_half = (x @ unpermute_rotary_rows(raw, n_heads).T).reshape(T, n_heads, D).transpose(1, 0, 2)
    halves = apply_rotary(tl.tensor(q_half), tl.tensor(cos), tl.tensor(sin)).numpy().transpose(1, 0, 2)
    # the same vectors, each head's coordinates in another order: compare the Gram matrices
    np.testing.assert_allclose(
        np.einsum("thd,shd->hts", adjacent, adjacent), np.einsum("thd,shd->hts", halves, halves), atol=1e-4
    )
    np.testing.assert_allclose(adjacent[..., 0::2], halves[..., : D // 2], atol=1e-5)


# -- GGUF files written here: round trip and bad input -----------------------------------------
def write_llama_gguf(path, model: Llama, architecture: str = "llama", embedding_type=None) -> None:
    """Write a tinyllm Llama as a llama.cpp GGUF file (q/k rows in the adjacent-pair layout)."""
    c = model.config
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_context_length(c.block_size)
    writer.add_embedding_length(c.n_embd)
    writer.add_block_count(c.n_layer)
    writer.add_feed_forward_length(c.ffn_dim)
    writer.add_head_count(c.n_head)
    writer.add_head_count_kv(c.n_kv_head)
    writer.add_rope_freq_base(c.rope_base)
    writer.add_layer_norm_rms_eps(c.norm_eps)
    writer.add_vocab_size(c.vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    symbols = list(bytes_to_unicode().values())
    tokens = (symbols + [f"<tok{i}>" for i in range(c.vocab_size)])[: c.vocab_size]
    writer.add_token_list(tokens)
    writer.add_token_merges([])
    writer.add_token_types([1] * c.vocab_size)
    state = model.state_dict()
    q_rows, kv_rows = c.n_head * c.head_dim, c.n_kv_head * c.head_dim

    def permute(weight, heads):  # the inverse of unpermute_rotary_rows
        rows, cols = weight.shape
        return weight.reshape(heads, 2, rows // heads // 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)

    def add(name, array, qtype=None):
        array = np.ascontiguousarray(array, dtype=np.float32)
        if qtype is None:
            writer.add_tensor(name, array)
        else:
            writer.add_tensor(name, gguf.quants.quantize(array, qtype), raw_dtype=qtype)

    add("token_embd.weight", state["embed.weight"], embedding_type)
    add("output_norm.weight", state["norm.weight"])
    for i in range(c.n_layer):
        ours, prefix = f"layers.{i}.", f"blk.{i}."
        q, k, v = np.split(state[ours + "attn.qkv_proj.weight"], [q_rows, q_rows + kv_rows])
        gate, up = np.split(state[ours + "mlp.gate_up_proj.weight"], 2)
        add(prefix + "attn_q.weight", permute(q, c.n_head))
        add(prefix + "attn_k.weight", permute(k, c.n_kv_head))
        add(prefix + "attn_v.weight", v)
        add(prefix + "attn_output.weight", state[ours + "attn.o_proj.weight"])
        add(prefix + "ffn_gate.weight", gate)
        add(prefix + "ffn_up.weight", up)
        add(prefix + "ffn_down.weight", state[ours + "mlp.down_proj.weight"])
        add(prefix + "attn_norm.weight", state[ours + "attn_norm.weight"])
        add(prefix + "ffn_norm.weight", state[ours + "mlp_norm.weight"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


GGUF_SMALL = dict(vocab_size=300, block_size=32, n_layer=2, n_embd=64, n_head=4, n_kv_head=2, ffn_dim=96)


def test_gguf_round_trip_gives_the_same_model(tmp_path):
    model = small_llama(**GGUF_SMALL)
    write_llama_gguf(tmp_path / "tiny.gguf", model)
    loaded = Llama.from_gguf(tmp_path / "tiny.gguf")
    assert loaded.config.norm_eps == pytest.approx(model.config.norm_eps)  # stored as float32
    assert dataclasses.replace(loaded.config, norm_eps=model.config.norm_eps) == model.config
    ids = np.random.default_rng(5).integers(0, 300, size=(1, 10))
    with tl.no_grad():
        np.testing.assert_allclose(loaded(tl.tensor(ids)).numpy(), model(tl.tensor(ids)).numpy(), atol=1e-5)


@pytest.mark.parametrize("qtype", [gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.Q8_0])
def test_quantized_gguf_tensors_dequantize_close_to_the_originals(tmp_path, qtype):
    model = small_llama(**GGUF_SMALL)
    write_llama_gguf(tmp_path / "q.gguf", model, embedding_type=qtype)
    gguf_file = read_gguf(tmp_path / "q.gguf")
    assert gguf_file.tensor_types["token_embd.weight"] == qtype.name
    original = model.embed.weight.numpy()
    scale = np.abs(original).max()
    tolerance = 1e-3 if qtype == gguf.GGMLQuantizationType.F16 else scale / 100
    np.testing.assert_allclose(gguf_file.tensor("token_embd.weight"), original, atol=tolerance)


def test_missing_gguf_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        Llama.from_gguf(tmp_path / "nothing-here.gguf")


def test_unsupported_architecture_is_a_config_error_naming_it(tmp_path):
    write_llama_gguf(tmp_path / "falcon.gguf", small_llama(**GGUF_SMALL), architecture="falcon")
    with pytest.raises(ConfigError, match="'falcon'"):
        Llama.from_gguf(tmp_path / "falcon.gguf")


def test_unsupported_quantization_is_a_config_error_naming_it(tmp_path):
    path = tmp_path / "q5k.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    # Q5_K: 256 weights in 176 bytes; the bytes need not make sense, the type is rejected first
    writer.add_tensor("token_embd.weight", np.zeros((4, 176), np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q5_K)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ConfigError, match="Q5_K"):
        Llama.from_gguf(path)


def test_a_file_that_is_not_gguf_is_a_config_error(tmp_path):
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(ConfigError, match="junk.gguf"):
        Llama.from_gguf(tmp_path / "junk.gguf")


def test_a_prompt_longer_than_the_context_is_a_shape_error_naming_the_lengths():
    model = small_llama()
    too_long = list(range(SMALL["block_size"] + 1))
    with pytest.raises(ShapeError, match="33 .*context length.*32"):
        model(tl.tensor([too_long]))
    with pytest.raises(ShapeError, match="33 tokens.*context length 32"):
        model.generate(too_long, max_new_tokens=1)
