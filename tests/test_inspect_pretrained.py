"""Looking inside real models, checked against transformers: SmolLM2's residual stream from
run_with_cache against LlamaForCausalLM's `output_hidden_states` (loaded from the same GGUF, as in
test_llama.py), SmolLM2's perplexity against exp(loss) of transformers, and MiniLM's attention
patterns against BertModel's `output_attentions`."""

import math

import numpy as np
import pytest
import torch

import tinyllm as tl
from tinyllm.hub import download
from tinyllm.metrics import perplexity
from tinyllm.models import BERT
from tinyllm.models.inspect import run_with_cache
from tinyllm.models.llama import Llama

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
TEXT = "The quick brown fox jumps over the lazy dog. It was a sunny day in the park, and"


@pytest.fixture(scope="module")
def smollm2_dir():
    return download("smollm2", quiet=True)


@pytest.fixture(scope="module")
def model(smollm2_dir):
    return Llama.from_gguf(smollm2_dir / GGUF_NAME)


@pytest.fixture(scope="module")
def hf_outputs(smollm2_dir, model):
    """transformers' hidden states (31 of (1, T, C)) and loss for TEXT with labels = input ids."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    logging.disable_progress_bar()
    reference = AutoModelForCausalLM.from_pretrained(smollm2_dir, gguf_file=GGUF_NAME, dtype=torch.float32).eval()
    ids = torch.tensor([model.tokenizer.encode(TEXT)])
    with torch.no_grad():
        out = reference(ids, output_hidden_states=True, labels=ids)
    return [h.numpy() for h in out.hidden_states], out.loss.item()


def test_run_with_cache_residual_stream_equals_transformers_hidden_states(model, hf_outputs):
    hidden_states, _ = hf_outputs
    _, cache = run_with_cache(model, tl.tensor([model.tokenizer.encode(TEXT)]))
    # transformers: [embeddings, output of block 0, ..., of block 28, final norm of block 29's output]
    ours = [cache["embed"]] + [cache[f"blocks.{i}.resid_post"] for i in range(29)] + [cache["ln_final"]]
    assert len(hidden_states) == len(ours) == 31
    for layer, (mine, theirs) in enumerate(zip(ours, hidden_states)):
        # SmolLM2's stream holds a few activations of ~2e4 (float32 spacing there: 2e-3), so the
        # tolerance is relative to each layer's largest value
        scale = float(np.abs(theirs).max())
        error = float(np.abs(mine.numpy() - theirs).max())
        assert error <= 1e-4 * scale, f"layer {layer}: max error {error:.3g} for values up to {scale:.3g}"


def test_smollm2_perplexity_equals_transformers(model, hf_outputs):
    _, loss = hf_outputs
    ours = perplexity(model, model.tokenizer.encode(TEXT))
    assert ours == pytest.approx(math.exp(loss), rel=1e-3)
    assert 5 < ours < 100  # an ordinary English sentence: neither memorized nor noise


def test_minilm_attention_patterns_equal_transformers_output_attentions():
    from transformers import BertModel

    directory = download("minilm", quiet=True)
    ours_model = BERT.from_pretrained(directory)
    reference = BertModel.from_pretrained(str(directory), attn_implementation="eager").eval()
    batch = ours_model.tokenizer(["The bank of the river.", "A short one"], padding=True, return_tensors="tl")
    _, cache = run_with_cache(ours_model, batch.input_ids, attention_mask=batch.attention_mask)
    with torch.no_grad():
        out = reference(
            torch.tensor(batch.input_ids.numpy()), attention_mask=torch.tensor(batch.attention_mask.numpy()),
            output_attentions=True,
        )  # fmt: skip
    assert len(out.attentions) == 6
    mask = batch.attention_mask.numpy().astype(bool)  # padded query rows differ by convention only
    for layer, theirs in enumerate(out.attentions):
        mine = cache[f"blocks.{layer}.attn.pattern"].numpy()
        np.testing.assert_allclose(
            mine[mask[:, None, :].repeat(12, 1)], theirs.numpy()[mask[:, None, :].repeat(12, 1)], atol=1e-5
        )
