"""Exports that load elsewhere: `GPT.save_pretrained` writes what transformers' GPT2LMHeadModel
reads as the same network (the logits agree), and tinyllm reads it back unchanged."""

import numpy as np
import pytest

import tinyllm as tl
from tinyllm.errors import UnsupportedError
from tinyllm.models import GPT, GPTConfig

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")


@pytest.mark.parametrize("activation,tie", [("gelu_tanh", True), ("gelu", False)])
def test_saved_gpt_gives_the_same_logits_in_transformers_gpt2(tmp_path, activation, tie):
    tl.manual_seed(3)
    config = GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=16, activation=activation,
                       tie_embeddings=tie)  # fmt: skip
    model = GPT(config).eval()
    model.save_pretrained(tmp_path)
    hf_model = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    ids = np.random.default_rng(0).integers(0, 50, size=(2, 12))
    with tl.no_grad():
        ours = model(tl.tensor(ids)).numpy()
    with torch.no_grad():
        theirs = hf_model(torch.tensor(ids)).logits.numpy()
    np.testing.assert_allclose(ours, theirs, atol=2e-5)
    reloaded = GPT.from_pretrained(tmp_path).state_dict()
    assert all(np.array_equal(reloaded[name], value) for name, value in model.state_dict().items())


def test_what_gpt2_cannot_express_is_refused(tmp_path):
    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8, positional="sinusoidal"))
    with pytest.raises(UnsupportedError, match="sinusoidal"):
        model.save_pretrained(tmp_path)
