"""Cached decoding with chunks of several tokens after a non-empty cache: the logits of every
position equal those of one full forward pass, and those of an oracle (GPT's PyTorch twin,
transformers' LlamaForCausalLM). The chunk boundaries are drawn, so a query block that starts
after the cache (a causal mask with an offset, RoPE from a start position, keys appended in the
middle of the cache) is reached in every size."""

from __future__ import annotations

import functools

import numpy as np
import strategies as s
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_llama import SMALL as SMALL_LLAMA
from test_llama import hf_twin, small_llama
from torch_gpt import TorchGPT

import tinyllm as tl
from tinyllm.models import GPT, GPTConfig
from tinyllm.nn.attention import CausalSelfAttention, LayerKVCache

T = 12


@st.composite
def chunkings(draw, length: int = T):
    """Chunk lengths summing to `length`: a first chunk fills the cache, then at least one later
    chunk holds two or more tokens."""
    cuts = draw(st.lists(st.integers(1, length - 1), min_size=1, max_size=5, unique=True).map(sorted))
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, length])]
    if max(sizes[1:]) < 2:
        sizes = [sizes[0], length - sizes[0]] if length - sizes[0] >= 2 else [length - 3, 3]
    return sizes


def cached_logits(model, ids: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Return the logits (B, T, V) of ids fed chunk by chunk through one cache."""
    cache = model.new_cache(ids.shape[0])
    pieces, start = [], 0
    with tl.no_grad():
        for size in sizes:
            pieces.append(model(tl.tensor(ids[:, start : start + size]), cache=cache).numpy())
            start += size
    assert cache.position == ids.shape[1]
    return np.concatenate(pieces, axis=1)


@settings(max_examples=s.examples(15))
@given(sizes=chunkings(), attend_all=st.booleans())
def test_attention_with_chunks_after_a_cache_equals_attention_over_the_whole_sequence(sizes, attend_all):
    tl.manual_seed(1)
    attention = CausalSelfAttention(8, 2)
    x = tl.tensor(np.random.default_rng(len(sizes)).standard_normal((2, T, 8)).astype(np.float32))
    assert sum(sizes) == T and max(sizes[1:]) >= 2
    with tl.no_grad():
        whole = attention(x).numpy()
        cache, pieces, start = LayerKVCache(16), [], 0
        for size in sizes:
            pieces.append(attention(x[:, start : start + size], cache=cache).numpy())
            start += size
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), whole, atol=1e-5)


@settings(max_examples=s.examples(6))
@given(sizes=chunkings(), positional=st.sampled_from(["learned", "sinusoidal"]))
def test_gpt_chunked_cached_logits_equal_the_full_forward_and_the_torch_twin(sizes, positional):
    tl.manual_seed(4)
    model = GPT(GPTConfig(vocab_size=37, block_size=16, n_layer=2, n_head=2, n_embd=16, positional=positional))
    model.eval()
    ids = np.random.default_rng(sum(sizes[:1])).integers(0, 37, size=(2, T))
    chunked = cached_logits(model, ids, sizes)
    with tl.no_grad():
        full = model(tl.tensor(ids)).numpy()
    with torch.no_grad():
        twin = TorchGPT.from_tinyllm(model).eval()(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(chunked, full, atol=1e-5)
    np.testing.assert_allclose(chunked, twin, atol=1e-4)


@functools.cache
def llama_pair(n_kv_head: int):
    """Return (tinyllm Llama, transformers' twin): built once per grouping, read-only after."""
    model = small_llama(2, n_kv_head=n_kv_head)
    return model, hf_twin(model)


@settings(max_examples=s.examples(6))
@given(sizes=chunkings(), n_kv_head=st.sampled_from([1, 2, 6]))
def test_llama_chunked_cached_logits_equal_the_full_forward_and_transformers(sizes, n_kv_head):
    model, hf = llama_pair(n_kv_head)
    ids = np.random.default_rng(len(sizes)).integers(0, SMALL_LLAMA["vocab_size"], size=(2, T))
    chunked = cached_logits(model, ids, sizes)
    with tl.no_grad():
        full = model(tl.tensor(ids)).numpy()
    with torch.no_grad():
        theirs = hf(torch.from_numpy(ids)).logits.numpy()
    np.testing.assert_allclose(chunked, full, atol=1e-5)
    np.testing.assert_allclose(chunked, theirs, atol=1e-4)
