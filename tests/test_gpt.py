"""GPT: config, initialization, bad input, the KV cache, and parity with a PyTorch twin (logits,
every gradient, and the loss through 10 AdamW steps)."""

# ruff: noqa: N803, N806 - B, T, C, H, D: the field's names for tensor sizes (the house convention for model code)

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch_gpt import TorchGPT, adamw_groups, is_no_decay, lm_loss

import tinyllm as tl
import tinyllm.nn.functional as F
from tinyllm.errors import ConfigError, DTypeError, OutOfRangeError, ShapeError
from tinyllm.models import GPT, GPTConfig
from tinyllm.optim import AdamW, weight_decay_groups

SMALL = dict(vocab_size=37, block_size=16, n_layer=2, n_head=2, n_embd=16)


@pytest.fixture(autouse=True, scope="module")
def torch_on_one_thread():
    """These models are tiny: torch's thread pool only adds contention on a shared 2-core runner."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_model(seed: int = 0, **overrides) -> GPT:
    tl.manual_seed(seed)
    return GPT(GPTConfig(**{**SMALL, **overrides}))


def random_ids(seed: int, shape, vocab_size: int = SMALL["vocab_size"]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab_size, size=shape)


def loss_of(model: GPT, ids: np.ndarray):
    logits = model(tl.tensor(ids[:, :-1]))
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tl.tensor(ids[:, 1:].reshape(-1)))


# -- config ---------------------------------------------------------------------------------
def test_config_round_trips_through_json():
    config = GPTConfig(**SMALL, dropout=0.1, activation="gelu_tanh", positional="sinusoidal", tie_embeddings=False)
    assert GPTConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize(
    "overrides,message",
    [
        (dict(n_embd=18, n_head=4), "divisible"),
        (dict(n_layer=0), "n_layer"),
        (dict(vocab_size=2.5), "vocab_size"),
        (dict(dropout=1.0), "dropout"),
        (dict(activation="relu"), "activation"),
        (dict(positional="rotary"), "positional"),
        (dict(layer_norm_eps=0.0), "layer_norm_eps"),
    ],
)
def test_config_rejects_bad_values(overrides, message):
    with pytest.raises(ConfigError, match=message):
        GPTConfig(**{**SMALL, **overrides})


def test_config_from_dict_rejects_unknown_and_missing_fields():
    with pytest.raises(ConfigError, match="n_hidden"):
        GPTConfig.from_dict({**SMALL, "n_hidden": 3})
    with pytest.raises(ConfigError):
        GPTConfig.from_dict({"vocab_size": 10})


# -- structure and initialization ---------------------------------------------------------------
def test_parameter_names_follow_gpt2_and_the_head_is_tied():
    model = small_model()
    names = list(model.state_dict())
    assert names[:2] == ["wte.weight", "wpe.weight"]
    assert "h.1.attn.c_attn.weight" in names and "h.1.mlp.c_proj.bias" in names and names[-1] == "ln_f.bias"
    assert not any(name.startswith("lm_head") for name in names)
    untied = small_model(tie_embeddings=False)
    assert "lm_head.weight" in untied.state_dict()
    assert untied.num_parameters() == model.num_parameters() + SMALL["vocab_size"] * SMALL["n_embd"]
    assert "wpe.weight" not in small_model(positional="sinusoidal").state_dict()


def test_initialization_is_nanogpt_style():
    tl.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=512, block_size=64, n_layer=8, n_head=4, n_embd=256))
    params = dict(model.named_parameters())
    assert np.std(params["h.0.mlp.c_fc.weight"].numpy()) == pytest.approx(0.02, rel=0.02)
    assert np.std(params["wte.weight"].numpy()) == pytest.approx(0.02, rel=0.02)
    assert np.std(params["h.3.mlp.c_proj.weight"].numpy()) == pytest.approx(0.02 / math.sqrt(16), rel=0.02)
    assert np.std(params["h.3.attn.c_proj.weight"].numpy()) == pytest.approx(0.02 / math.sqrt(16), rel=0.05)
    assert not np.any(params["h.2.attn.c_attn.bias"].numpy())
    assert np.all(params["h.1.ln_2.weight"].numpy() == 1) and np.all(params["ln_f.weight"].numpy() == 1)


def test_initial_loss_is_near_uniform_guess():
    model = small_model()
    assert loss_of(model, random_ids(0, (4, 17))).item() == pytest.approx(math.log(SMALL["vocab_size"]), abs=0.1)


def test_dropout_is_active_in_training_and_off_in_eval():
    model = small_model(dropout=0.5)
    ids = tl.tensor(random_ids(1, (2, 8)))
    assert not np.allclose(model(ids).numpy(), model(ids).numpy())
    model.eval()
    np.testing.assert_array_equal(model(ids).numpy(), model(ids).numpy())


# -- bad input ----------------------------------------------------------------------------------
def test_token_id_beyond_the_vocabulary_raises_out_of_range():
    model = small_model()
    with pytest.raises(OutOfRangeError, match=r"token id 37 .*vocab_size 37"):
        model(tl.tensor([[1, 2, 37]]))
    with pytest.raises(OutOfRangeError, match="token id -1"):
        model(tl.tensor([[-1, 2]]))


def test_sequence_longer_than_the_block_raises_shape_error():
    model = small_model()
    with pytest.raises(ShapeError, match=r"sequence length 17 exceeds .*block_size 16"):
        model(tl.tensor(random_ids(0, (1, 17))))
    with tl.no_grad():
        cache = model.new_cache()
        model(tl.tensor(random_ids(0, (1, 12))), cache=cache)
        with pytest.raises(ShapeError, match=r"12 cached \+ 5 new = 17 exceeds .*block_size 16"):
            model(tl.tensor(random_ids(0, (1, 5))), cache=cache)


def test_non_integer_ids_raise_dtype_error():
    with pytest.raises(DTypeError, match="float32"):
        small_model()(tl.tensor([[1.0, 2.0]]))


def test_ids_of_the_wrong_rank_raise_shape_error():
    with pytest.raises(ShapeError, match=r"\(batch, sequence\)"):
        small_model()(tl.tensor([1, 2, 3]))


# -- the KV cache -------------------------------------------------------------------------------
@given(
    seed=st.integers(0, 2**16),
    prefill=st.integers(1, 4),
    steps=st.lists(st.integers(1, 3), min_size=1, max_size=4),
    batch=st.integers(1, 3),
    positional=st.sampled_from(["learned", "sinusoidal"]),
)
def test_cached_logits_equal_uncached_logits(seed, prefill, steps, batch, positional):
    model = small_model(seed % 4, positional=positional)
    T = prefill + sum(steps)
    ids = random_ids(seed, (batch, T))
    with tl.no_grad():
        whole = model(tl.tensor(ids)).numpy()
        cache = model.new_cache(batch)
        pieces, start = [], 0
        for size in [prefill, *steps]:
            pieces.append(model(tl.tensor(ids[:, start : start + size]), cache=cache).numpy())
            start += size
        assert cache.position == T
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), whole, atol=1e-5, rtol=0)


# -- parity with the PyTorch twin ---------------------------------------------------------------
VARIANTS = [
    dict(),
    dict(activation="gelu_tanh", positional="sinusoidal"),
    dict(tie_embeddings=False, bias=False),
]


@pytest.mark.parametrize("overrides", VARIANTS)
def test_logits_match_the_torch_twin(overrides):
    model = small_model(1, **overrides)
    twin = TorchGPT.from_tinyllm(model)
    ids = random_ids(2, (3, SMALL["block_size"]))
    expected = twin(torch.from_numpy(ids)).detach().numpy()
    np.testing.assert_allclose(model(tl.tensor(ids)).numpy(), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("overrides", VARIANTS)
def test_every_gradient_matches_the_torch_twin(overrides):
    model = small_model(2, **overrides)
    twin = TorchGPT.from_tinyllm(model)
    ids = random_ids(3, (3, SMALL["block_size"] + 1))
    loss = loss_of(model, ids)
    loss.backward()
    ids_t = torch.from_numpy(ids)
    twin_loss = lm_loss(twin(ids_t[:, :-1]), ids_t[:, 1:])
    twin_loss.backward()
    assert loss.item() == pytest.approx(twin_loss.item(), abs=1e-5)
    twin_params = dict(twin.named_parameters())
    for name, param in model.named_parameters():
        assert_close_to_scale(param.grad.numpy(), twin_params[name].grad.numpy(), name)


def assert_close_to_scale(ours: np.ndarray, theirs: np.ndarray, name: str, tolerance: float = 1e-3) -> None:
    """Assert ours == theirs within `tolerance` of theirs' largest magnitude: a LayerNorm gradient
    of size 1e-5 is checked as strictly as an embedding gradient of size 1e-1, and an all-zero
    gradient fails."""
    scale = float(np.abs(theirs).max())
    assert scale > 0, f"{name}: the twin's gradient is zero"
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=tolerance * scale, err_msg=name)


@pytest.mark.parametrize("overrides", [VARIANTS[0], VARIANTS[2]])
def test_ten_adamw_steps_track_the_torch_twin(overrides):
    model = small_model(3, **overrides)
    twin = TorchGPT.from_tinyllm(model)
    groups = weight_decay_groups(model, weight_decay=0.1)
    no_decay = {name for group in groups if group["weight_decay"] == 0.0 for name in group["names"]}
    assert no_decay == {name for name, p in twin.named_parameters() if is_no_decay(name, p)}
    optimizer = AdamW(groups, lr=3e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    twin_optimizer = torch.optim.AdamW(adamw_groups(twin, 0.1), lr=3e-3, betas=(0.9, 0.95), eps=1e-8)
    for step in range(10):
        ids = random_ids(100 + step, (4, SMALL["block_size"] + 1))
        optimizer.zero_grad()
        loss = loss_of(model, ids)
        loss.backward()
        optimizer.step()
        ids_t = torch.from_numpy(ids)
        twin_optimizer.zero_grad()
        twin_loss = lm_loss(twin(ids_t[:, :-1]), ids_t[:, 1:])
        twin_loss.backward()
        twin_optimizer.step()
        assert loss.item() == pytest.approx(twin_loss.item(), abs=1e-4), f"step {step}"
    twin_params = dict(twin.named_parameters())
    for name, param in model.named_parameters():
        np.testing.assert_allclose(param.numpy(), twin_params[name].detach().numpy(), atol=1e-4, err_msg=name)
