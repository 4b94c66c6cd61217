"""The Transformer modules: positional encodings, the KV cache, causal attention, MLP and Block,
each against its formula or its PyTorch counterpart."""

# ruff: noqa: N803, N806 - B, T, C, H, D: the field's names for tensor sizes (the house convention for model code)

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import tinyllm as tl
import tinyllm.nn.functional as F
from tinyllm import kernels
from tinyllm.backend import get_backend
from tinyllm.errors import GraphError, ShapeError
from tinyllm.nn.attention import CausalSelfAttention, KVCache, LayerKVCache, causal_mask_with_offset
from tinyllm.nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from tinyllm.nn.transformer import MLP, Block


@pytest.fixture(autouse=True, scope="module")
def torch_on_one_thread():
    """These models are tiny: torch's thread pool only adds contention on a shared 2-core runner."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- positional encodings ---------------------------------------------------------------------------
@given(max_len=st.integers(1, 40), dim=st.integers(1, 33))
def test_sinusoidal_encoding_follows_the_formula(max_len, dim):
    table = SinusoidalPositionalEncoding(max_len, dim)(max_len).numpy()
    for pos in range(max_len):
        for col in range(dim):
            two_i = col - col % 2
            angle = pos / 10000 ** (two_i / dim)
            expected = math.sin(angle) if col % 2 == 0 else math.cos(angle)
            assert table[pos, col] == pytest.approx(expected, abs=1e-6)


def test_positional_encodings_slice_from_the_offset():
    tl.manual_seed(0)
    learned = LearnedPositionalEmbedding(10, 4)
    np.testing.assert_array_equal(learned(3, offset=5).numpy(), learned.weight.numpy()[5:8])
    fixed = SinusoidalPositionalEncoding(10, 4)
    np.testing.assert_array_equal(fixed(3, offset=5).numpy(), fixed(10).numpy()[5:8])
    assert list(dict(fixed.named_parameters())) == []  # no trainable weights


@pytest.mark.parametrize("module", [LearnedPositionalEmbedding(8, 4), SinusoidalPositionalEncoding(8, 4)])
def test_positions_beyond_the_table_raise_shape_error(module):
    with pytest.raises(ShapeError, match="8 positions"):
        module(5, offset=4)


def test_learned_positional_gradient_lands_on_the_used_rows():
    learned = LearnedPositionalEmbedding(6, 3)
    learned(2, offset=1).sum().backward()
    expected = np.zeros((6, 3), dtype=np.float32)
    expected[1:3] = 1.0
    np.testing.assert_array_equal(learned.weight.grad.numpy(), expected)


# -- the KV cache ---------------------------------------------------------------------------------
def _kv(rng, B, H, T, D):
    return tl.tensor(rng.standard_normal((B, H, T, D)).astype(np.float32))


@pytest.mark.parametrize("max_len", [None, 20])
def test_kv_cache_appends_and_returns_all_positions(max_len):
    rng = np.random.default_rng(0)
    cache = LayerKVCache(max_len)
    parts_k, parts_v = [], []
    for T_new in (5, 1, 1, 13):  # 20 in all; the growing cache reallocates on the way
        k, v = _kv(rng, 2, 3, T_new, 4), _kv(rng, 2, 3, T_new, 4)
        parts_k.append(k.numpy())
        parts_v.append(v.numpy())
        keys, values = cache.append(k, v)
        np.testing.assert_array_equal(keys.numpy(), np.concatenate(parts_k, axis=2))
        np.testing.assert_array_equal(values.numpy(), np.concatenate(parts_v, axis=2))
    assert cache.length == 20


def test_kv_cache_position_reset_and_overflow():
    rng = np.random.default_rng(1)
    cache = KVCache(n_layer=2, max_len=4)
    assert cache.position == 0 and len(cache) == 2
    for layer in range(2):
        cache[layer].append(_kv(rng, 1, 2, 3, 4), _kv(rng, 1, 2, 3, 4))
    assert cache.position == 3
    with pytest.raises(ShapeError, match="max_len 4"):
        cache[0].append(_kv(rng, 1, 2, 2, 4), _kv(rng, 1, 2, 2, 4))
    cache.reset()
    assert cache.position == 0


def test_kv_cache_refuses_tensors_that_require_grad():
    k = tl.randn(1, 1, 2, 4, requires_grad=True)
    with pytest.raises(GraphError, match="no_grad"):
        LayerKVCache(8).append(k, k)


def test_kv_cache_rejects_keys_of_another_shape():
    rng = np.random.default_rng(2)
    cache = LayerKVCache(8)
    cache.append(_kv(rng, 1, 2, 1, 4), _kv(rng, 1, 2, 1, 4))
    with pytest.raises(ShapeError):
        cache.append(_kv(rng, 1, 3, 1, 4), _kv(rng, 1, 3, 1, 4))


def test_causal_mask_with_offset_lets_each_new_query_see_its_past():
    mask = causal_mask_with_offset(get_backend("cpu"), 2, 5).numpy()
    np.testing.assert_array_equal(mask, [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])


@pytest.mark.parametrize("rows, causal", [(1, False), (3, False), (3, True), (17, True)])
def test_a_decoding_steps_attention_without_a_graph_equals_torch(rows, causal):
    # few query rows under no_grad run the fused kernel's one-task-per-head forward (17: the blocked one)
    rng = np.random.default_rng(7)
    q, k, v = (
        tl.tensor(rng.standard_normal(shape).astype(np.float32))
        for shape in [(2, 3, rows, 8), (2, 3, 19, 8), (2, 3, 19, 8)]
    )
    with tl.no_grad():
        ours = F.scaled_dot_product_attention(q, k, v, is_causal=causal).numpy()
    theirs = torch.nn.functional.scaled_dot_product_attention(
        *(torch.from_numpy(t.numpy()) for t in (q, k, v)), is_causal=causal
    )
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-6)
    expected = "numba" if rows <= 16 else "reference"  # 2 x 3 x 17 x 19 scores: few, and too many rows
    assert kernels.choose("attention", q.array, k.array, inference=True) is kernels.FAMILIES["attention"][expected]


# -- attention, MLP, block --------------------------------------------------------------------
def _copy_linear(ours, theirs):
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.weight.numpy()))
        theirs.bias.copy_(torch.from_numpy(ours.bias.numpy()))


def test_attention_matches_torch_causal_sdpa():
    tl.manual_seed(0)
    attn = CausalSelfAttention(16, 4)
    x = np.random.default_rng(3).standard_normal((2, 7, 16)).astype(np.float32)
    c_attn, c_proj = torch.nn.Linear(16, 48), torch.nn.Linear(16, 16)
    _copy_linear(attn.c_attn, c_attn)
    _copy_linear(attn.c_proj, c_proj)
    xt = torch.from_numpy(x)
    q, k, v = (t.view(2, 7, 4, 4).transpose(1, 2) for t in c_attn(xt).split(16, dim=2))
    y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    expected = c_proj(y.transpose(1, 2).reshape(2, 7, 16)).detach().numpy()
    np.testing.assert_allclose(attn(tl.tensor(x)).numpy(), expected, atol=1e-5)


def test_attention_output_at_a_position_ignores_later_positions():
    tl.manual_seed(1)
    attn = CausalSelfAttention(8, 2)
    x = np.random.default_rng(4).standard_normal((1, 6, 8)).astype(np.float32)
    changed = x.copy()
    changed[:, 4:] += 10.0
    a, b = attn(tl.tensor(x)).numpy(), attn(tl.tensor(changed)).numpy()
    np.testing.assert_allclose(a[:, :4], b[:, :4], atol=1e-6)
    assert not np.allclose(a[:, 4:], b[:, 4:])


@given(split=st.integers(1, 8), extra=st.integers(0, 4))
def test_attention_with_cache_equals_attention_over_the_whole_sequence(split, extra):
    tl.manual_seed(2)
    attn = CausalSelfAttention(8, 2)
    T = split + extra
    x = tl.tensor(np.random.default_rng(split * 7 + extra).standard_normal((2, T, 8)).astype(np.float32))
    with tl.no_grad():
        whole = attn(x).numpy()
        cache = LayerKVCache(16)
        pieces = [attn(x[:, :split], cache=cache).numpy()]
        pieces += [attn(x[:, t : t + 1], cache=cache).numpy() for t in range(split, T)]
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), whole, atol=1e-5)


@pytest.mark.parametrize("activation,approximate", [("gelu", "none"), ("gelu_tanh", "tanh")])
def test_mlp_matches_torch(activation, approximate):
    tl.manual_seed(3)
    mlp = MLP(8, 32, activation=activation)
    c_fc, c_proj = torch.nn.Linear(8, 32), torch.nn.Linear(32, 8)
    _copy_linear(mlp.c_fc, c_fc)
    _copy_linear(mlp.c_proj, c_proj)
    x = np.random.default_rng(5).standard_normal((2, 3, 8)).astype(np.float32)
    expected = c_proj(torch.nn.functional.gelu(c_fc(torch.from_numpy(x)), approximate=approximate))
    np.testing.assert_allclose(mlp(tl.tensor(x)).numpy(), expected.detach().numpy(), atol=1e-5)


def test_mlp_rejects_an_unknown_activation():
    with pytest.raises(ValueError, match="relu"):
        MLP(4, 16, activation="relu")


def test_block_is_pre_ln_residual():
    tl.manual_seed(4)
    block = Block(8, 2)
    x = tl.tensor(np.random.default_rng(6).standard_normal((1, 5, 8)).astype(np.float32))
    h = x + block.attn(block.ln_1(x))
    expected = h + block.mlp(block.ln_2(h))
    np.testing.assert_allclose(block(x).numpy(), expected.numpy(), atol=1e-6)
    names = [name for name, _ in block.named_parameters()]
    assert names[:4] == ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias"]
    assert "mlp.c_fc.weight" in names and "mlp.c_proj.bias" in names


def test_attention_rejects_heads_that_do_not_divide_the_width():
    with pytest.raises(ShapeError, match="divisible"):
        CausalSelfAttention(10, 4)
