"""Exports that load elsewhere: `GPT.save_pretrained` writes what transformers' GPT2LMHeadModel
reads as the same network (the logits agree), and tinyllm reads it back unchanged."""

import json

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


def test_a_classifier_with_berts_pooler_gives_the_same_logits_in_transformers(tmp_path):
    from tinyllm.models.bert import BertConfig
    from tinyllm.models.bert_heads import BertForSequenceClassification

    tl.manual_seed(4)
    config = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16)  # fmt: skip
    model = BertForSequenceClassification(config, num_labels=3, pooling="pooler").eval()
    model.save_pretrained(tmp_path)
    hf_model = transformers.BertForSequenceClassification.from_pretrained(tmp_path).eval()
    ids = np.random.default_rng(1).integers(1, 40, size=(2, 7))
    mask = np.array([[1] * 7, [1] * 4 + [0] * 3])
    with tl.no_grad():
        ours = model(ids, attention_mask=mask).logits.numpy()
    with torch.no_grad():
        theirs = hf_model(torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_a_classifier_without_a_pooler_is_refused_by_transformers_auto_classes(tmp_path, pooling):
    from tinyllm.models.bert import BertConfig
    from tinyllm.models.bert_heads import BertForSequenceClassification

    config = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    BertForSequenceClassification(config, pooling=pooling).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="custom code"):
        transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path, trust_remote_code=False)
    with pytest.raises(ValueError, match="custom code"):
        transformers.AutoConfig.from_pretrained(tmp_path, trust_remote_code=False)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] != "bert" and "BertForSequenceClassification" not in saved["architectures"]
    readme = (tmp_path / "README.md").read_text()
    assert "not transformers' `BertForSequenceClassification`" in readme and f"({pooling} pooling)" in readme


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_a_classifier_without_a_pooler_gives_the_same_logits_in_transformers_with_its_code(tmp_path, pooling):
    from tinyllm.models.bert import BertConfig
    from tinyllm.models.bert_heads import BertForSequenceClassification

    tl.manual_seed(5)
    config = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16)  # fmt: skip
    model = BertForSequenceClassification(config, num_labels=3, pooling=pooling).eval()
    model.save_pretrained(tmp_path)
    hf_model = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path, trust_remote_code=True)
    hf_model.eval()
    ids = np.random.default_rng(2).integers(1, 40, size=(2, 7))
    mask = np.array([[1] * 7, [1] * 3 + [0] * 4])
    with tl.no_grad():
        ours = model(ids, attention_mask=mask).logits.numpy()
    with torch.no_grad():
        theirs = hf_model(torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    assert type(hf_model).__name__ == "TinyLLMBertForSequenceClassification"
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
