"""Masked-LM: the 15% / 80-10-10 corruption, the head against transformers, and a short pretraining run."""

import numpy as np
import pytest
import torch

import tinyllm as tl
from tinyllm.backend import HostRandom
from tinyllm.cli.main import main
from tinyllm.data import load_text
from tinyllm.hub import download
from tinyllm.models.bert import BertConfig
from tinyllm.models.bert_heads import IGNORE_INDEX, BertForMaskedLM
from tinyllm.tokenizers import WordPieceTokenizer
from tinyllm.train.mlm import MLMConfig, MLMWindows, mask_tokens, pretrain_mlm

MASK_ID, VOCAB = 103, 30522


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer.from_file(download("minilm", quiet=True) / "vocab.txt")


def _tiny_config(vocab_size=VOCAB):
    return BertConfig(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64,
    )  # fmt: skip


@pytest.fixture(scope="module")
def corrupted():
    """A large batch corrupted once: (original, corrupted, labels, special)."""
    random = HostRandom(0)
    ids = random.integers(1000, 30000, (200, 500))
    special = np.zeros(ids.shape, dtype=bool)
    ids[:, 0], ids[:, -1], ids[:, -40:-1] = 101, 102, 0  # [CLS] ... [SEP] then padding
    special[:, 0] = special[:, -40:] = True
    corrupted_ids, labels = mask_tokens(ids, special, MASK_ID, VOCAB, random)
    return ids, corrupted_ids, labels, special


def test_special_tokens_and_padding_are_never_chosen(corrupted):
    ids, corrupted_ids, labels, special = corrupted
    assert (labels[special] == IGNORE_INDEX).all()
    np.testing.assert_array_equal(corrupted_ids[special], ids[special])


def test_fifteen_percent_of_ordinary_tokens_are_chosen(corrupted):
    _, _, labels, special = corrupted
    fraction = (labels[~special] != IGNORE_INDEX).mean()
    assert abs(fraction - 0.15) < 0.005


def test_chosen_tokens_are_80_percent_mask_10_random_10_kept(corrupted):
    ids, corrupted_ids, labels, _ = corrupted
    chosen = labels != IGNORE_INDEX
    np.testing.assert_array_equal(labels[chosen], ids[chosen])
    masked = (corrupted_ids[chosen] == MASK_ID).mean()
    kept = (corrupted_ids[chosen] == ids[chosen]).mean()
    assert abs(masked - 0.8) < 0.01 and abs(kept - 0.1) < 0.01 and abs(1 - masked - kept - 0.1) < 0.01
    np.testing.assert_array_equal(corrupted_ids[~chosen], ids[~chosen])


def test_windows_are_framed_by_cls_and_sep(tokenizer):
    windows = MLMWindows(np.arange(1000, 1100), tokenizer, seq_len=12, seed=0)
    rows = windows.sample(4)
    assert rows.shape == (4, 12)
    assert (rows[:, 0] == tokenizer.cls_token_id).all() and (rows[:, -1] == tokenizer.sep_token_id).all()
    assert (np.diff(rows[:, 1:-1], axis=1) == 1).all()  # consecutive corpus tokens


def test_mlm_head_and_loss_match_transformers(tokenizer, tmp_path):
    from transformers import BertForMaskedLM as Reference

    tl.manual_seed(0)
    model = BertForMaskedLM(_tiny_config()).eval()
    model.bert.tokenizer = tokenizer
    model.save_pretrained(tmp_path)
    reference = Reference.from_pretrained(str(tmp_path)).eval()
    ids, mask = [[101, 2023, 103, 1037, 102, 0]], [[1, 1, 1, 1, 1, 0]]
    labels = [[IGNORE_INDEX, IGNORE_INDEX, 2003, IGNORE_INDEX, 7592, IGNORE_INDEX]]
    with tl.no_grad():
        ours = model(ids, mask)
        ours_loss = model(ids, mask, labels=labels).loss.item()
    with torch.no_grad():
        theirs = reference(torch.tensor(ids), attention_mask=torch.tensor(mask), labels=torch.tensor(labels))
    np.testing.assert_allclose(ours.logits.numpy(), theirs.logits.numpy(), atol=1e-4)
    assert ours_loss == pytest.approx(theirs.loss.item(), abs=1e-4)
    again = BertForMaskedLM.from_pretrained(tmp_path)
    with tl.no_grad():
        np.testing.assert_array_equal(again(ids, mask).logits.numpy(), ours.logits.numpy())


def test_short_pretraining_on_the_bundled_corpus_lowers_the_masked_token_loss(tokenizer):
    ids = np.asarray(tokenizer.encode(load_text()[:40_000], add_special_tokens=False))
    split = int(len(ids) * 0.9)
    tl.manual_seed(0)
    model = BertForMaskedLM(_tiny_config())
    config = MLMConfig(steps=40, batch_size=8, seq_len=32, lr=5e-3, warmup_steps=5, eval_every=40, eval_batches=2)
    history = pretrain_mlm(model, ids[:split], ids[split:], tokenizer, config, progress=False)
    (_, before), (_, after) = history.eval_loss[0], history.eval_loss[-1]
    assert before == pytest.approx(np.log(VOCAB), abs=0.3)  # untrained: about uniform over the vocabulary
    assert after < before - 1.5
    assert np.mean(history.train_loss[-5:]) < np.mean(history.train_loss[:5]) - 1.0


def test_pretrain_cli_writes_a_model_that_finetune_can_load(tmp_path, capsys):
    from tinyllm.models.bert_heads import BertForSequenceClassification

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(load_text()[:5000], encoding="utf-8")
    argv = ["pretrain-mlm", "--out", str(tmp_path / "mlm"), "--corpus", str(corpus), "--hidden", "16", "--layers", "1"]
    argv += ["--heads", "2", "--steps", "3", "--batch-size", "2", "--seq-len", "16", "--eval-every", "3", "--quiet"]
    assert main(argv) == 0
    assert "held-out masked-token loss" in capsys.readouterr().out
    classifier = BertForSequenceClassification.from_pretrained(tmp_path / "mlm")
    assert classifier.config.hidden_size == 16 and classifier.tokenizer.vocab_size == VOCAB
