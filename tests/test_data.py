"""Data: the bundled corpus, train/val split, seeded random batches, padded batches, typed errors."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tinyllm.data import DEFAULT_CORPUS, BatchSampler, Corpus, fixed_batches, load_text, pad_batch, random_windows
from tinyllm.errors import DataError
from tinyllm.tokenizers import CharTokenizer


def test_bundled_corpus_is_about_a_megabyte_of_shakespeare():
    text = load_text()
    assert 0.9e6 < len(text.encode("utf-8")) < 1.2e6
    assert "HAMLET" in text and "Project Gutenberg" not in text


def test_bundled_corpus_is_what_the_script_regenerates():
    script = Path(__file__).resolve().parent.parent / "scripts" / "make_corpus.py"
    spec = importlib.util.spec_from_file_location("make_corpus", script)
    make_corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_corpus)
    assert make_corpus.build() == DEFAULT_CORPUS.read_text(encoding="utf-8")


def test_any_utf8_file_is_a_corpus(tmp_path):
    path = tmp_path / "poem.txt"
    path.write_text("Ünïcödé stanza\n" * 10, encoding="utf-8")
    assert load_text(path).startswith("Ünïcödé")


def test_empty_or_non_utf8_or_missing_file_is_a_data_error(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DataError, match="empty"):
        load_text(tmp_path / "empty.txt")
    with pytest.raises(DataError, match="not UTF-8: byte 3 is 0xe9"):
        load_text(tmp_path / "latin1.txt")
    with pytest.raises(DataError, match="cannot read"):
        load_text(tmp_path / "missing.txt")


def test_split_keeps_order_and_takes_val_from_the_end():
    text = "abcdefghij" * 10
    corpus = Corpus.from_text(text, CharTokenizer.from_text(text), val_fraction=0.1)
    assert len(corpus.train) == 90 and len(corpus.val) == 10
    assert np.array_equal(np.concatenate([corpus.train, corpus.val]), np.arange(100) % 10)


def test_too_short_corpus_is_a_data_error_naming_the_sizes():
    text = "to be or not to be, " * 3
    with pytest.raises(DataError, match=r"val part has 6 tokens \(of 60 in all\).*block_size 8 needs 9"):
        Corpus.from_text(text, CharTokenizer.from_text(text), block_size=8)
    with pytest.raises(DataError, match="empty"):
        Corpus.from_text("", CharTokenizer.from_text("a"))


def test_random_windows_are_contiguous_and_shifted_by_one():
    ids = np.arange(1000, dtype=np.int64)
    sampler = BatchSampler(ids, batch_size=8, block_size=16, seed=3)
    x, y = sampler.next()
    assert x.shape == y.shape == (8, 16) and x.dtype == np.int64
    assert np.array_equal(np.diff(x, axis=1), np.ones((8, 15)))
    assert np.array_equal(y, x + 1)
    assert x.max() < 999 and y.max() <= 999


def test_batches_are_seeded_and_resume_from_a_saved_position():
    ids = np.arange(500, dtype=np.int64)
    a, b = BatchSampler(ids, 4, 8, seed=1), BatchSampler(ids, 4, 8, seed=1)
    assert np.array_equal(a.next()[0], b.next()[0])
    a.next()
    state = a.state_dict()
    expected = a.next()[0]
    c = BatchSampler(ids, 4, 8, seed=99)
    c.load_state_dict(state)
    assert np.array_equal(c.next()[0], expected)
    assert c.batches_drawn == 3


def test_fixed_batches_are_the_same_at_every_call():
    ids = np.arange(300, dtype=np.int64)
    first, second = fixed_batches(ids, 3, 2, 5, seed=7), fixed_batches(ids, 3, 2, 5, seed=7)
    assert all(np.array_equal(p[0], q[0]) for p, q in zip(first, second))


def test_window_longer_than_the_data_is_a_data_error():
    with pytest.raises(DataError, match="10 tokens cannot fill one window of block_size 10"):
        BatchSampler(np.arange(10), 2, 10)
    with pytest.raises(DataError, match="block_size 10"):
        random_windows(np.arange(10), 2, 10, None)


def test_pad_batch_pads_right_and_masks_the_padding():
    ids, mask = pad_batch([[5, 6, 7], [8], []], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]
    assert mask.tolist() == [[True, True, True], [True, False, False], [False, False, False]]
    ids, mask = pad_batch([[1, 2]], pad_id=9, max_length=4)
    assert ids.tolist() == [[1, 2, 9, 9]] and mask.sum() == 2


def test_pad_batch_bad_input_is_a_data_error():
    with pytest.raises(DataError, match="at least one sequence"):
        pad_batch([])
    with pytest.raises(DataError, match="3 tokens, more than max_length 2"):
        pad_batch([[1, 2, 3]], max_length=2)
