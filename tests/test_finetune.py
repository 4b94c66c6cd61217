"""Fine-tuning: the VADER split, batching, scores, a tiny overfitting run of MiniLM, save/load, the CLI."""

import numpy as np
import pytest

import tinyllm as tl
from tinyllm.backend import HostRandom
from tinyllm.cli.main import main
from tinyllm.data.sentiment import load_sentiment, read_snippets
from tinyllm.errors import DataError
from tinyllm.hub import download
from tinyllm.models.bert_heads import BertForSequenceClassification
from tinyllm.train.classify import (
    FinetuneConfig,
    classification_scores,
    finetune,
    length_bucketed_batches,
    predict,
)


@pytest.fixture(scope="module")
def split():
    return load_sentiment()


@pytest.fixture(scope="module")
def minilm_dir():
    return download("minilm", quiet=True)


def test_split_is_80_20_of_the_sentences_with_nonzero_scores(split):
    train, test = split
    assert (len(train), len(test)) == (8454, 2114)
    assert set(train.labels) == set(test.labels) == {0, 1}
    assert not set(train.texts) & set(test.texts) - {""}
    assert 0.45 < np.mean(train.labels) < 0.55


def test_split_is_fixed_by_the_seed(split):
    again_train, _ = load_sentiment()
    assert again_train.texts[:50] == split[0].texts[:50]
    other_train, _ = load_sentiment(seed=1)
    assert other_train.texts[:50] != split[0].texts[:50]


def test_malformed_sentiment_file_names_the_line(tmp_path):
    path = tmp_path / "snippets.txt"
    path.write_text("1\t2.5\tgood film\n2\tbad film\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2"):
        read_snippets(path)


def test_length_buckets_cover_every_example_once_with_similar_lengths():
    random = HostRandom(0)
    lengths = [int(n) for n in random.integers(3, 60, 1000)]
    batches = length_bucketed_batches(lengths, 16, random, pool=10)
    flat = sorted(i for batch in batches for i in batch)
    assert flat == list(range(1000))
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])
    assert spread < 10  # versus about 50 for random batches


def test_scores_of_known_predictions():
    scores = classification_scores([1, 1, 0, 0, 1], [1, 0, 0, 0, 1])
    assert scores["accuracy"] == pytest.approx(0.8)
    assert scores["f1"] == pytest.approx(0.8)  # precision 2/3, recall 1
    assert scores["macro_f1"] == pytest.approx((0.8 + 0.8) / 2)


def test_minilm_classifier_overfits_a_tiny_set(split, minilm_dir):
    train, _ = split
    positives = [t for t, y in zip(train.texts, train.labels) if y == 1][:6]
    negatives = [t for t, y in zip(train.texts, train.labels) if y == 0][:6]
    texts, labels = positives + negatives, [1] * 6 + [0] * 6
    tl.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(minilm_dir)
    config = FinetuneConfig(epochs=6, batch_size=6, lr=2e-4, warmup_fraction=0.1, max_length=32)
    history = finetune(model, texts, labels, config, progress=False)
    assert np.mean(history.loss[-2:]) < np.mean(history.loss[:2]) - 0.3
    assert (predict(model, texts, max_length=32) == labels).all()
    assert model.bert.embeddings.word_embeddings.weight.requires_grad  # unfrozen again afterwards


def test_saved_classifier_loads_back_with_its_head(minilm_dir, tmp_path):
    tl.manual_seed(1)
    model = BertForSequenceClassification.from_pretrained(minilm_dir, num_labels=3, pooling="cls")
    model.save_pretrained(tmp_path)
    again = BertForSequenceClassification.from_pretrained(tmp_path)
    assert (again.num_labels, again.pooling) == (3, "cls")
    batch = model.tokenizer(["a fine film", "dull"], padding=True, return_tensors="tl")
    with tl.no_grad():
        expected = model(batch.input_ids, batch.attention_mask).logits.numpy()
        np.testing.assert_array_equal(again(batch.input_ids, batch.attention_mask).logits.numpy(), expected)


def test_finetune_cli_prints_accuracy_f1_and_time(capsys):
    argv = ["finetune", "--limit", "8", "--test-limit", "8", "--epochs", "1", "--batch-size", "4"]
    assert main(argv + ["--max-length", "24", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "F1" in out and "training" in out


def test_finetune_out_with_default_pooling_is_the_same_model_in_transformers(tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    argv = ["finetune", "--limit", "4", "--test-limit", "4", "--epochs", "1", "--batch-size", "4"]
    assert main(argv + ["--max-length", "16", "--quiet", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    with pytest.raises(ValueError, match="custom code"):  # not silently BertForSequenceClassification
        transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path, trust_remote_code=False)
    hf_model = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path, trust_remote_code=True)
    hf_tokenizer = transformers.BertTokenizer.from_pretrained(str(tmp_path))
    ours = BertForSequenceClassification.from_pretrained(tmp_path)
    assert ours.pooling == "mean"
    texts = ["a fine, warm film", "dull"]
    batch = ours.tokenizer(texts, padding=True, return_tensors="tl")
    with tl.no_grad():
        expected = ours(batch.input_ids, batch.attention_mask).logits.numpy()
    with torch.no_grad():
        theirs = hf_model.eval()(**hf_tokenizer(texts, padding=True, return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(theirs, expected, atol=1e-5)
