"""Every parameter's gradient of small random models against transformers' own models with the
same weights: Llama (grouped-query attention, RoPE, SwiGLU, RMSNorm) against LlamaForCausalLM,
BERT (padding mask, token types, post-LN, exact GELU) against BertModel; and the RoPE tables
against transformers' rotary embedding.

Tolerances are relative to each parameter's gradient scale (its largest magnitude), so a
small gradient (a norm's, a bias's) is checked as strictly as a large one, and a gradient that
is zero where transformers' is not fails.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_llama import SMALL as SMALL_LLAMA
from test_llama import hf_twin, small_llama

import tinyllm as tl
import tinyllm.nn.functional as F
from tinyllm.models import BERT
from tinyllm.models.bert import BertConfig
from tinyllm.models.bert_pretrained import to_tinyllm_names
from tinyllm.nn.rope import RotaryEmbedding, rotary_tables


def assert_close_to_scale(ours: np.ndarray, theirs: np.ndarray, name: str, tolerance: float = 1e-3) -> None:
    """Assert ours == theirs within `tolerance` times theirs' largest magnitude (which must be > 0)."""
    scale = float(np.abs(theirs).max())
    assert scale > 0, f"{name}: the reference gradient is zero"
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=tolerance * scale, err_msg=name)


# -- Llama ------------------------------------------------------------------------------------
def llama_gradients_of_hf(model, hf) -> dict:
    """Return transformers' parameter gradients under tinyllm's names (q, k, v and gate, up are
    one fused matrix each in tinyllm)."""
    c = model.config
    grads = {name: p.grad.numpy() for name, p in hf.named_parameters() if p.grad is not None}
    ours = {"embed.weight": grads["model.embed_tokens.weight"], "norm.weight": grads["model.norm.weight"]}
    if not c.tie_embeddings:
        ours["lm_head.weight"] = grads["lm_head.weight"]
    for i in range(c.n_layer):
        mine, theirs = f"layers.{i}.", f"model.layers.{i}."
        attention, mlp = theirs + "self_attn.", theirs + "mlp."
        ours[mine + "attn.qkv_proj.weight"] = np.concatenate(
            [grads[attention + f"{p}_proj.weight"] for p in ("q", "k", "v")]
        )
        ours[mine + "attn.o_proj.weight"] = grads[attention + "o_proj.weight"]
        ours[mine + "mlp.gate_up_proj.weight"] = np.concatenate(
            [grads[mlp + "gate_proj.weight"], grads[mlp + "up_proj.weight"]]
        )
        ours[mine + "mlp.down_proj.weight"] = grads[mlp + "down_proj.weight"]
        ours[mine + "attn_norm.weight"] = grads[theirs + "input_layernorm.weight"]
        ours[mine + "mlp_norm.weight"] = grads[theirs + "post_attention_layernorm.weight"]
    return ours


@pytest.mark.parametrize("n_kv_head, tie", [(2, True), (1, False), (6, True)])
def test_every_llama_gradient_matches_transformers(n_kv_head, tie):
    model = small_llama(3, n_kv_head=n_kv_head, tie_embeddings=tie).train()
    hf = hf_twin(model).train()
    ids = np.random.default_rng(5).integers(0, SMALL_LLAMA["vocab_size"], size=(2, 13))
    logits = model(tl.tensor(ids[:, :-1]))  # (B, T, V)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tl.tensor(ids[:, 1:].reshape(-1)))
    loss.backward()
    ids_t = torch.from_numpy(ids)
    hf_logits = hf(ids_t[:, :-1]).logits
    hf_loss = torch.nn.functional.cross_entropy(hf_logits.reshape(-1, hf_logits.shape[-1]), ids_t[:, 1:].reshape(-1))
    hf_loss.backward()
    assert loss.item() == pytest.approx(hf_loss.item(), abs=1e-5)
    expected = llama_gradients_of_hf(model, hf)
    params = dict(model.named_parameters())
    assert set(params) == set(expected)
    for name, param in params.items():
        assert_close_to_scale(param.grad.numpy(), expected[name], name)


# -- BERT -------------------------------------------------------------------------------------
def small_bert_pair(seed: int = 0):
    """Return (tinyllm BERT, transformers BertModel) with the same random weights."""
    from transformers import BertConfig as HFBertConfig
    from transformers import BertModel

    sizes = dict(
        vocab_size=41,
        hidden_size=24,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=40,
        max_position_embeddings=20,
        type_vocab_size=2,
    )
    torch.manual_seed(seed)
    hf = BertModel(HFBertConfig(**sizes, hidden_act="gelu", layer_norm_eps=1e-12), add_pooling_layer=False)
    with torch.no_grad():  # norms and biases away from their 1 and 0, so a wrong one shows
        for param in hf.parameters():
            param.add_(0.1 * torch.randn_like(param))
    model = BERT(BertConfig(**sizes))
    model.load_state_dict(to_tinyllm_names({k: v.detach().numpy().copy() for k, v in hf.state_dict().items()}))
    return model.eval(), hf.eval()


def test_every_bert_gradient_matches_transformers():
    model, hf = small_bert_pair()
    rng = np.random.default_rng(2)
    ids = rng.integers(1, 41, size=(3, 9))
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    ids[mask == 0] = 0
    types = (np.arange(9)[None, :] >= rng.integers(2, 8, size=(3, 1))).astype(np.int64)
    weights = rng.standard_normal((3, 9, 24)).astype(np.float32)  # a loss that weighs each output

    hidden = model(ids, attention_mask=mask, token_type_ids=types).last_hidden_state  # (B, T, C)
    (hidden * tl.tensor(weights * mask[..., None])).sum().backward()
    hf_hidden = hf(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), token_type_ids=torch.from_numpy(types))
    (hf_hidden.last_hidden_state * torch.from_numpy(weights * mask[..., None])).sum().backward()

    np.testing.assert_allclose(
        hidden.numpy() * mask[..., None], hf_hidden.last_hidden_state.detach().numpy() * mask[..., None], atol=1e-5
    )
    expected = to_tinyllm_names({name: p.grad.numpy() for name, p in hf.named_parameters() if p.grad is not None})
    params = dict(model.named_parameters())
    assert set(params) == set(expected)
    largest = max(float(np.abs(g).max()) for g in expected.values())
    for name, param in params.items():
        if name.endswith("attention.key.bias"):
            # softmax over keys ignores a score added to the whole row, which is all q . b_k is:
            # the true gradient is zero, and both sides hold rounding noise
            assert np.abs(param.grad.numpy()).max() < 1e-6 * largest, name
            assert np.abs(expected[name]).max() < 1e-6 * largest, name
        else:
            assert_close_to_scale(param.grad.numpy(), expected[name], name)


# -- RoPE -------------------------------------------------------------------------------------
@pytest.mark.parametrize("head_dim, base", [(8, 10000.0), (16, 500.0), (6, 100000.0)])
def test_rope_tables_match_transformers_rotary_embedding(head_dim, base):
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    positions = 40
    config = LlamaConfig(
        hidden_size=head_dim * 2, num_attention_heads=2, head_dim=head_dim, rope_theta=base, max_position_embeddings=64
    )
    rotary = LlamaRotaryEmbedding(config)
    x = torch.zeros(1, positions, head_dim)
    cos_t, sin_t = rotary(x, torch.arange(positions)[None])  # (1, P, D): each angle twice, "half" layout
    cos, sin = rotary_tables(head_dim, positions, base)  # (P, D/2)
    np.testing.assert_allclose(np.concatenate([cos, cos], -1), cos_t[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(np.concatenate([sin, sin], -1), sin_t[0].numpy(), atol=1e-5)


def test_rope_tables_follow_the_formula_at_far_positions():
    """cos(p * base^(-2i/D)) written out in float64 for positions up to 4095, where float32
    angles would lose digits."""
    head_dim, base, positions = 12, 10000.0, 4096
    cos, sin = rotary_tables(head_dim, positions, base)
    for p in (0, 1, 7, 1000, 4095):
        for i in range(head_dim // 2):
            angle = p / base ** (2 * i / head_dim)
            assert cos[p, i] == pytest.approx(np.cos(angle), abs=2e-7)
            assert sin[p, i] == pytest.approx(np.sin(angle), abs=2e-7)


def test_rotary_embedding_rotates_pairs_half_a_head_apart_by_position():
    """RotaryEmbedding(x, start) against the rotation written out with transformers'
    rotate_half: x * cos + rotate_half(x) * sin, at positions start .. start + length - 1."""
    from transformers.models.llama.modeling_llama import rotate_half

    head_dim, start, length = 8, 5, 6
    rope = RotaryEmbedding(head_dim, 32, base=1000.0)
    x = np.random.default_rng(0).standard_normal((2, 3, length, head_dim)).astype(np.float32)
    angles = np.arange(start, start + length)[:, None] * 1000.0 ** (-np.arange(0, head_dim, 2) / head_dim)
    cos = torch.from_numpy(np.cos(np.concatenate([angles, angles], -1))).float()
    sin = torch.from_numpy(np.sin(np.concatenate([angles, angles], -1))).float()
    expected = torch.from_numpy(x) * cos + rotate_half(torch.from_numpy(x)) * sin
    np.testing.assert_allclose(rope(tl.tensor(x), start).numpy(), expected.numpy(), atol=1e-5)
