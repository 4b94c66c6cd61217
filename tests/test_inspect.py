"""run_with_cache and the logit lens on small random GPT, BERT and Llama models: the attention
patterns equal the probabilities the reference attention kernel computes inside the model, the
logit lens at the last layer equals the model's logits, and a hook changes an activation for the
rest of the forward pass."""

import numpy as np
import pytest

import tinyllm as tl
from tinyllm import kernels
from tinyllm.errors import ArgumentError, UnsupportedError
from tinyllm.kernels import attention_reference
from tinyllm.models import BERT, GPT, GPTConfig
from tinyllm.models.bert import BertConfig
from tinyllm.models.inspect import activation_names, logit_lens, run_with_cache
from tinyllm.models.llama import Llama, LlamaConfig
from tinyllm.nn import Linear
from tinyllm.nn import functional as F

IDS = [[3, 1, 4, 1, 5, 9, 2, 6], [2, 7, 1, 8, 2, 8, 1, 8]]


def small(kind: str):
    tl.manual_seed(0)
    if kind == "gpt":
        return GPT(GPTConfig(vocab_size=16, block_size=16, n_layer=2, n_head=2, n_embd=16)).eval()
    if kind == "llama":
        config = LlamaConfig(vocab_size=16, block_size=16, n_layer=2, n_embd=16, n_head=4, n_kv_head=2, ffn_dim=24)
        return Llama(config).eval()
    config = BertConfig(vocab_size=16, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24)
    return BERT(config).eval()


def kernel_probabilities(model, ids, monkeypatch, **kwargs) -> list[np.ndarray]:
    """Return the probabilities (B, H', R, Tk) that the reference kernel computed in one forward
    of the model, in call order."""
    recorded = []
    original = attention_reference.forward

    def recording(q, k, v, bias, causal, scale):
        out, saved = original(q, k, v, bias, causal, scale)
        recorded.append(np.array(saved[3]))  # saved = (q, k, v, probabilities, scale)
        return out, saved

    monkeypatch.setattr(attention_reference, "forward", recording)
    with kernels.use(attention="reference"), tl.no_grad():
        model(tl.tensor(ids), **kwargs)
    return recorded


@pytest.mark.parametrize("kind", ["gpt", "llama", "bert"])
def test_attention_patterns_equal_the_reference_kernels_probabilities(kind, monkeypatch):
    model = small(kind)
    kwargs = {"attention_mask": [[1] * 8, [1] * 5 + [0] * 3]} if kind == "bert" else {}
    expected = kernel_probabilities(model, IDS, monkeypatch, **kwargs)
    with kernels.use(attention="numba"):  # the fused kernel never forms the pattern
        _, cache = run_with_cache(model, tl.tensor(IDS), **kwargs)
    heads = 4 if kind == "llama" else 2
    for layer, probs in enumerate(expected):
        pattern = cache[f"blocks.{layer}.attn.pattern"].numpy()
        assert pattern.shape == (2, heads, 8, 8)
        np.testing.assert_allclose(pattern, probs.reshape(2, heads, 8, 8), atol=1e-6)
        np.testing.assert_allclose(pattern.sum(-1), 1.0, atol=1e-5)
    if kind == "bert":  # padding keys get no attention
        assert np.all(cache["blocks.0.attn.pattern"].numpy()[1, :, :, 5:] == 0.0)
    else:  # causal: no query sees a later key
        assert np.all(np.triu(cache["blocks.1.attn.pattern"].numpy(), k=1) == 0.0)


def test_llama_pattern_puts_query_head_h_on_key_head_h_over_group():
    model = small("llama")
    _, cache = run_with_cache(model, tl.tensor(IDS[:1]))
    block = model.layers[0]
    x = cache["blocks.0.resid_pre"]
    with tl.no_grad():
        qkv = block.attn.qkv_proj(block.attn_norm(x)).reshape(1, 8, 8, 4).transpose(1, 2)  # (1, 8 heads, T, D)
        qk = model.rope(qkv[:, :6], 0)
    q, k = qk.numpy()[0, :4], qk.numpy()[0, 4:6]  # (4, T, D), (2, T, D)
    for h in range(4):
        scores = q[h] @ k[h // 2].T / np.sqrt(4) + np.triu(np.full((8, 8), -np.inf), k=1)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        np.testing.assert_allclose(
            cache["blocks.0.attn.pattern"].numpy()[0, h], probs / probs.sum(-1, keepdims=True), atol=1e-5
        )


@pytest.mark.parametrize("kind", ["gpt", "llama"])
def test_logit_lens_at_the_last_layer_equals_the_models_logits(kind):
    model = small(kind)
    with tl.no_grad():
        logits = model(tl.tensor(IDS)).numpy()
    lens = logit_lens(model, tl.tensor(IDS)).numpy()
    assert lens.shape == (2, 2, 8, 16)
    np.testing.assert_allclose(lens[-1], logits, atol=1e-6)
    assert np.abs(lens[0] - logits).max() > 1e-3  # an earlier layer reads differently


@pytest.mark.parametrize("kind", ["gpt", "llama", "bert"])
def test_residual_stream_adds_up(kind):
    model = small(kind)
    _, cache = run_with_cache(model, tl.tensor(IDS))
    if kind == "bert":  # post-LN: the stream is normalized after each addition
        block = model.layers[0]
        with tl.no_grad():
            mid = block.attention.norm(cache["blocks.0.resid_pre"] + cache["blocks.0.attn_out"])
        np.testing.assert_allclose(mid.numpy(), cache["blocks.0.resid_mid"].numpy(), atol=1e-5)
        return
    for i in range(2):
        pre, attn, mid = (cache[f"blocks.{i}.{n}"].numpy() for n in ("resid_pre", "attn_out", "resid_mid"))
        mlp, post = cache[f"blocks.{i}.mlp_out"].numpy(), cache[f"blocks.{i}.resid_post"].numpy()
        np.testing.assert_allclose(pre + attn, mid, atol=1e-6)
        np.testing.assert_allclose(mid + mlp, post, atol=1e-6)
    np.testing.assert_array_equal(cache["blocks.0.resid_post"].numpy(), cache["blocks.1.resid_pre"].numpy())
    assert list(cache) == activation_names(model)


def test_a_hook_changes_an_activation_for_the_rest_of_the_forward_pass():
    model = small("gpt")
    logits, cache = run_with_cache(model, tl.tensor(IDS), hooks={"blocks.1.mlp_out": lambda t: t * 0.0})
    assert np.all(cache["blocks.1.mlp_out"].numpy() == 0.0)
    np.testing.assert_array_equal(cache["blocks.1.resid_post"].numpy(), cache["blocks.1.resid_mid"].numpy())
    with tl.no_grad():
        expected = F.linear(model.ln_f(cache["blocks.1.resid_mid"]).reshape(16, 16), model.wte.weight)
    np.testing.assert_allclose(logits.numpy().reshape(16, 16), expected.numpy(), atol=1e-6)
    untouched, _ = run_with_cache(model, tl.tensor(IDS))
    assert np.abs(untouched.numpy() - logits.numpy()).max() > 1e-4  # and the hook is gone afterwards


@pytest.mark.parametrize("kind", ["gpt", "llama", "bert"])
def test_a_changed_attention_pattern_is_what_the_values_are_mixed_with(kind):
    model = small(kind)
    plain, _ = run_with_cache(model, tl.tensor(IDS))
    same, _ = run_with_cache(model, tl.tensor(IDS), hooks={"blocks.0.attn.pattern": lambda p: p})
    if kind == "bert":
        plain, same = plain.last_hidden_state, same.last_hidden_state
    np.testing.assert_allclose(same.numpy(), plain.numpy(), atol=1e-5)

    def first_token_only(pattern):
        only = np.zeros(pattern.shape, dtype="float32")
        only[..., 0] = 1.0
        return tl.tensor(only)

    _, cache = run_with_cache(model, tl.tensor(IDS), hooks={"blocks.0.attn.pattern": first_token_only})
    attn_out = cache["blocks.0.attn_out"].numpy()  # every position now copies position 0's values
    np.testing.assert_allclose(attn_out, np.broadcast_to(attn_out[:, :1], attn_out.shape), atol=1e-5)


def test_names_restrict_what_is_recorded_and_unknown_names_are_an_error():
    model = small("gpt")
    _, cache = run_with_cache(model, tl.tensor(IDS), names=["blocks.0.attn.pattern"])
    assert list(cache) == ["blocks.0.attn.pattern"]
    with pytest.raises(ArgumentError, match="blocks.9.mlp_out"):
        run_with_cache(model, tl.tensor(IDS), hooks={"blocks.9.mlp_out": lambda t: t})
    with pytest.raises(UnsupportedError, match="Linear"):
        run_with_cache(Linear(2, 2), tl.tensor([[1.0, 2.0]]))
    with pytest.raises(UnsupportedError, match="BERT"):
        logit_lens(small("bert"), tl.tensor(IDS))
