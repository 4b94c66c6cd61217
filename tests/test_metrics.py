"""tinyllm.metrics: corpus BLEU equal to sacrebleu's on the same inputs (drawn by hypothesis and
hand-picked edge cases), classification scores on hand-counted examples, and perplexity of a
model whose next-token probabilities are known."""

import math

import numpy as np
import pytest
import sacrebleu
from hypothesis import given
from hypothesis import strategies as st

import tinyllm as tl
from tinyllm.errors import ArgumentError, ShapeError
from tinyllm.metrics import accuracy, corpus_bleu, macro_f1, perplexity, precision_recall_f1, tokenize_13a
from tinyllm.nn import Module

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", ".", ",", "!", "3.5", "10-20", "it's", '"hi"', "&amp;", "U.S."]
sentences = st.lists(st.sampled_from(WORDS), max_size=14).map(" ".join)


@given(data=st.data(), n=st.integers(1, 5), streams=st.integers(1, 3))
def test_corpus_bleu_equals_sacrebleu(data, n, streams):
    hypotheses = data.draw(st.lists(sentences, min_size=n, max_size=n))
    references = [data.draw(st.lists(sentences, min_size=n, max_size=n)) for _ in range(streams)]
    ours, theirs = corpus_bleu(hypotheses, references), sacrebleu.corpus_bleu(hypotheses, references)
    assert ours.score == pytest.approx(theirs.score, abs=1e-9)
    assert ours.precisions == pytest.approx(theirs.precisions, abs=1e-9)
    assert (ours.sys_len, ours.ref_len, ours.bp) == (theirs.sys_len, theirs.ref_len, pytest.approx(theirs.bp))


@pytest.mark.parametrize(
    "hypotheses, references",
    [
        (["The cat sat on the mat."], [["The cat is on the mat."]]),
        (["identical sentence here, yes"], [["identical sentence here, yes"]]),
        (["nothing matches"], [["completely different words"]]),
        (["short"], [["a much longer reference sentence than the hypothesis"]]),
        (["", "It costs $3.50 (or 10-20 euros)."], [["an empty hypothesis", "It costs $3.50 (or 10-20 euros)!"]]),
        (["Paris is the capital."], [["Paris is the capital of France."], ["The capital is Paris."]]),
    ],
)
def test_corpus_bleu_equals_sacrebleu_on_edge_cases(hypotheses, references):
    assert corpus_bleu(hypotheses, references).score == pytest.approx(
        sacrebleu.corpus_bleu(hypotheses, references).score, abs=1e-9
    )


def test_identical_text_scores_100_and_13a_splits_punctuation_but_not_numbers():
    assert corpus_bleu(["a b c d e"], [["a b c d e"]]).score == pytest.approx(100.0)
    assert tokenize_13a("Hello, world! It costs 3.50 (10-20).") == [
        "Hello", ",", "world", "!", "It", "costs", "3.50", "(", "10", "-", "20", ")", ".",
    ]  # fmt: skip


def test_corpus_bleu_rejects_misaligned_references():
    with pytest.raises(ShapeError, match="2 sentences for 1 hypotheses"):
        corpus_bleu(["a"], [["a", "b"]])
    with pytest.raises(ArgumentError):
        corpus_bleu("a sentence", [["a sentence"]])


def test_classification_scores_on_a_hand_counted_example():
    predictions = [1, 1, 0, 1, 0, 0, 1, 0]
    labels = [1, 0, 0, 1, 1, 0, 1, 1]
    # positive class: tp = 3, predicted 4, actual 5; negative: tp = 2, predicted 4, actual 3
    assert accuracy(predictions, labels) == 5 / 8
    precision, recall, f1 = precision_recall_f1(predictions, labels)
    assert (precision, recall, f1) == (3 / 4, 3 / 5, pytest.approx(2 * 3 / 9))
    assert macro_f1(predictions, labels) == pytest.approx((6 / 9 + 4 / 7) / 2)
    assert precision_recall_f1([0, 0], [0, 0]) == (0.0, 0.0, 0.0)  # no positives at all
    with pytest.raises(ShapeError):
        accuracy([1, 0], [1])


class FixedNextToken(Module):
    """A 'model' that gives token (i + 1) % V probability p and spreads the rest evenly."""

    def __init__(self, vocab: int, p: float) -> None:
        super().__init__()
        self.vocab, self.p = vocab, p

    def forward(self, ids):
        ids = ids.numpy()
        probs = np.full(ids.shape + (self.vocab,), (1 - self.p) / (self.vocab - 1))
        for index in np.ndindex(ids.shape):
            probs[index + ((ids[index] + 1) % self.vocab,)] = self.p
        return tl.tensor(np.log(probs).astype("float32"))


def test_perplexity_is_exp_of_the_mean_negative_log_likelihood():
    model = FixedNextToken(vocab=5, p=0.5)
    assert perplexity(model, [0, 1, 2, 3, 4]) == pytest.approx(2.0, rel=1e-5)  # every step right at p = 1/2
    assert perplexity(model, [0, 3, 1, 4]) == pytest.approx(8.0, rel=1e-5)  # every step wrong at p = 1/8
    assert perplexity(model, [0, 1, 0]) == pytest.approx(math.sqrt(2 * 8), rel=1e-5)
    with pytest.raises(ArgumentError, match="at least 2 tokens"):
        perplexity(model, [1])
