"""BERT: MiniLM parity with transformers' BertModel, sentence embeddings, loading errors, save/load."""

import json
import shutil

import numpy as np
import pytest
import torch

import tinyllm as tl
from tinyllm.errors import ConfigError, OutOfRangeError, ShapeError
from tinyllm.hub import download
from tinyllm.models import BERT, BertConfig
from tinyllm.models.bert import l2_normalize, mean_pool

SENTENCES = [
    "A man is eating food.",
    "The quick brown fox jumps over the lazy dog, again and again, until it is very tired of jumping.",
    "hi",
    "Café déjà vu in 東京 😀",
]


@pytest.fixture(scope="module")
def minilm_dir():
    return download("minilm", quiet=True)


@pytest.fixture(scope="module")
def model(minilm_dir):
    return BERT.from_pretrained(minilm_dir)


@pytest.fixture(scope="module")
def reference(minilm_dir):
    from transformers import BertModel, BertTokenizer

    return BertModel.from_pretrained(str(minilm_dir)).eval(), BertTokenizer.from_pretrained(str(minilm_dir))


@pytest.fixture(scope="module")
def outputs(model, reference):
    """Our and transformers' last_hidden_state (B, T, C) for the padded batch, and the mask."""
    ref_model, ref_tokenizer = reference
    batch = model.tokenizer(SENTENCES, padding=True, return_tensors="tl")
    with tl.no_grad():
        ours = model(batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state.numpy()
    ref_batch = ref_tokenizer(SENTENCES, padding=True, return_tensors="pt")
    np.testing.assert_array_equal(batch.input_ids.numpy(), ref_batch["input_ids"].numpy())
    with torch.no_grad():
        theirs = ref_model(**ref_batch).last_hidden_state.numpy()
    return ours, theirs, batch.attention_mask.numpy()


def test_batch_is_padded_to_different_lengths(outputs):
    lengths = outputs[2].sum(axis=1)
    assert len(set(lengths.tolist())) == len(SENTENCES)


def test_last_hidden_state_matches_transformers_at_every_position(outputs):
    """Every position, padded ones included (both attend only to the unpadded keys)."""
    ours, theirs, _ = outputs
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)


def test_unpadded_positions_match_more_tightly(outputs):
    ours, theirs, mask = outputs
    assert np.abs(ours - theirs)[mask.astype(bool)].max() < 2e-5


def test_pooled_sentence_embeddings_have_cosine_one_with_the_reference(outputs):
    ours, theirs, mask = outputs
    ours_pooled = l2_normalize(mean_pool(tl.tensor(ours), tl.tensor(mask))).numpy()
    weights = mask[:, :, None].astype(np.float64)
    theirs_pooled = (theirs * weights).sum(axis=1) / weights.sum(axis=1)
    theirs_pooled /= np.linalg.norm(theirs_pooled, axis=1, keepdims=True)
    cosine = (ours_pooled * theirs_pooled).sum(axis=1)
    assert cosine.min() >= 0.99999


def test_embed_gives_unit_vectors_that_rank_paraphrases_first(model):
    vectors = model.embed(["A man is eating food.", "Someone is having a meal.", "The stock market crashed."]).numpy()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2] + 0.3


def test_sentence_pairs_with_token_types_match_transformers(model, reference):
    ref_model, ref_tokenizer = reference
    first, second = ["How old are you?", "Where is it"], ["I am six.", "In the big red box on the table"]
    batch = model.tokenizer(first, second, padding=True, return_tensors="tl")
    with tl.no_grad():
        ours = model(batch.input_ids, batch.attention_mask, batch.token_type_ids).last_hidden_state.numpy()
    with torch.no_grad():
        theirs = ref_model(**ref_tokenizer(first, second, padding=True, return_tensors="pt")).last_hidden_state
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=0, atol=1e-4)


def test_gradients_match_transformers(model, reference):
    """d(sum of squared outputs)/d(weights) on a small padded batch, checked on a few parameters."""
    ref_model, ref_tokenizer = reference
    texts = ["a short one", "and a slightly longer sentence here"]
    batch = model.tokenizer(texts, padding=True, return_tensors="tl")
    model.zero_grad()
    hidden = model(batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
    (hidden * hidden * batch.attention_mask.to("float32").unsqueeze(-1)).sum().backward()
    ref_model.zero_grad()
    ref_batch = ref_tokenizer(texts, padding=True, return_tensors="pt")
    ref_hidden = ref_model(**ref_batch).last_hidden_state
    (ref_hidden * ref_hidden * ref_batch["attention_mask"].unsqueeze(-1)).sum().backward()
    pairs = {
        "layers.5.output.weight": ref_model.encoder.layer[5].output.dense.weight,
        "layers.0.attention.query.weight": ref_model.encoder.layer[0].attention.self.query.weight,
        "embeddings.norm.weight": ref_model.embeddings.LayerNorm.weight,
        "embeddings.position_embeddings.weight": ref_model.embeddings.position_embeddings.weight,
    }
    params = dict(model.named_parameters())
    for name, ref_param in pairs.items():
        expected = ref_param.grad.numpy()
        np.testing.assert_allclose(params[name].grad.numpy(), expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())
    model.zero_grad()


def test_text_longer_than_max_positions_raises_shape_error(model):
    batch = model.tokenizer(" ".join(["word"] * 600))
    with pytest.raises(ShapeError, match="max_position_embeddings 512"):
        model([batch["input_ids"]])


def test_out_of_range_ids_raise(model):
    with pytest.raises(OutOfRangeError, match="30522"):
        model([[101, 30522, 102]])


def test_small_model_from_scratch_runs_forward_and_backward():
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=32)
    model = BERT(config)
    hidden = model([[1, 2, 3, 0]], attention_mask=[[1, 1, 1, 0]]).last_hidden_state
    assert hidden.shape == (1, 4, 16)
    hidden.sum().backward()
    assert all(p.grad is not None for name, p in model.named_parameters() if "token_type" not in name)


def test_saved_model_loads_back_here_and_in_transformers(model, tmp_path):
    from transformers import BertModel

    model.save_pretrained(tmp_path)
    again = BERT.from_pretrained(tmp_path)
    ids = [model.tokenizer.encode("saving and loading")]
    with tl.no_grad():
        expected = model(ids).last_hidden_state.numpy()
        np.testing.assert_array_equal(again(ids).last_hidden_state.numpy(), expected)
    with torch.no_grad():
        theirs = BertModel.from_pretrained(str(tmp_path)).eval()(torch.tensor(ids)).last_hidden_state.numpy()
    np.testing.assert_allclose(theirs, expected, atol=1e-4)


# -- bad input: typed errors that name the problem -----------------------------------------------
@pytest.fixture
def model_copy(minilm_dir, tmp_path):
    """A copy of the MiniLM directory to break (the weights file is linked, not copied)."""
    for name in ("config.json", "vocab.txt", "tokenizer_config.json"):
        shutil.copy(minilm_dir / name, tmp_path / name)
    (tmp_path / "model.safetensors").symlink_to(minilm_dir / "model.safetensors")
    return tmp_path


def _edit_config(directory, **changes):
    config = json.loads((directory / "config.json").read_text())
    config.update(changes)
    (directory / "config.json").write_text(json.dumps(config))


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        BERT.from_pretrained(tmp_path / "nowhere")


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "vocab.txt"])
def test_missing_file_is_named(model_copy, name):
    (model_copy / name).unlink()
    with pytest.raises(ConfigError, match=name.replace(".", r"\.")):
        BERT.from_pretrained(model_copy)


def test_malformed_config_is_named(model_copy):
    (model_copy / "config.json").write_text('{"hidden_size": 384,')
    with pytest.raises(ConfigError, match=r"config\.json"):
        BERT.from_pretrained(model_copy)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"model_type": "gpt2"}, "'gpt2'"),
        ({"hidden_act": "swish"}, "hidden_act 'swish'"),
        ({"position_embedding_type": "relative_key"}, "relative_key"),
        ({"hidden_size": 380}, "divisible"),
    ],
)
def test_unsupported_config_raises_config_error(model_copy, changes, message):
    _edit_config(model_copy, **changes)
    with pytest.raises(ConfigError, match=message):
        BERT.from_pretrained(model_copy)


def test_config_with_more_layers_than_the_weights_names_missing_ones(model_copy):
    _edit_config(model_copy, num_hidden_layers=7)
    with pytest.raises(ConfigError, match="layers.6"):
        BERT.from_pretrained(model_copy)


def test_truncated_weights_file_is_named(model_copy):
    data = (model_copy / "model.safetensors").read_bytes()[:1000]
    (model_copy / "model.safetensors").unlink()
    (model_copy / "model.safetensors").write_bytes(data)
    with pytest.raises(ConfigError, match=r"model\.safetensors"):
        BERT.from_pretrained(model_copy)


def test_embed_cli_prints_similarities_and_vectors(capsys):
    from tinyllm.cli.main import main

    assert main(["embed", "--similarity", "A man is eating food.", "Someone is having a meal."]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and "1.0000" in lines[1]
    assert main(["embed", "hello", "--digits", "3"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["text"] == "hello" and len(record["embedding"]) == 384
