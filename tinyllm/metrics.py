"""The numbers that say how good a model is: accuracy, precision/recall/F1, perplexity, corpus BLEU.

- classification: `accuracy`, `precision_recall_f1` (one class against the rest), `macro_f1`;
- language modelling: `perplexity(model, ids)` = exp(mean negative log-likelihood of each next
  token), the quantity transformers reports as exp(loss) for `labels=input_ids`;
- translation and summarization: `corpus_bleu`, the BLEU of sacrebleu's `corpus_bleu` with its
  defaults (13a tokenization, 4-grams, exponential smoothing, brevity penalty against the closest
  reference length), written out so that each step can be read.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from tinyllm.autograd.grad_mode import no_grad
from tinyllm.backend import np
from tinyllm.errors import ArgumentError, ShapeError
from tinyllm.train.evaluate import language_model_loss
from tinyllm.train.evaluate import perplexity as exp_of_loss


# -- classification -----------------------------------------------------------------------------
def _pair(predictions, labels) -> tuple:
    predictions, labels = np.asarray(predictions).reshape(-1), np.asarray(labels).reshape(-1)
    if predictions.shape != labels.shape:
        raise ShapeError(f"predictions ({predictions.size}) and labels ({labels.size}) differ in length")
    if predictions.size == 0:
        raise ArgumentError("metrics need at least one prediction, got none")
    return predictions, labels


def accuracy(predictions, labels) -> float:
    """Return the fraction of predictions equal to their label."""
    predictions, labels = _pair(predictions, labels)
    return float((predictions == labels).mean())


def precision_recall_f1(predictions, labels, positive=1) -> tuple[float, float, float]:
    """Return (precision, recall, F1) of the class `positive` against all others; a ratio with
    nothing to divide by is 0, as in scikit-learn's default."""
    predictions, labels = _pair(predictions, labels)
    true_pos = int(((predictions == positive) & (labels == positive)).sum())
    predicted, actual = int((predictions == positive).sum()), int((labels == positive).sum())
    precision = true_pos / predicted if predicted else 0.0
    recall = true_pos / actual if actual else 0.0
    f1 = 2 * true_pos / (predicted + actual) if predicted + actual else 0.0
    return precision, recall, f1


def macro_f1(predictions, labels) -> float:
    """Return the mean over the classes present in labels or predictions of each class's F1."""
    predictions, labels = _pair(predictions, labels)
    classes = sorted(set(labels.tolist()) | set(predictions.tolist()))
    return sum(precision_recall_f1(predictions, labels, c)[2] for c in classes) / len(classes)


# -- language modelling -------------------------------------------------------------------------
def perplexity(model, ids) -> float:
    """Return exp(mean over positions t of -log p(ids[t+1] | ids[:t+1])) of a decoder on one token
    sequence (a list of ids, at most the model's context length and at least 2 long)."""
    ids = list(ids)
    if len(ids) < 2:
        raise ArgumentError(f"perplexity needs at least 2 tokens (one to predict), got {len(ids)}")
    with no_grad():
        loss = language_model_loss(model, [ids[:-1]], [ids[1:]])
    return exp_of_loss(loss.item())


# -- BLEU ---------------------------------------------------------------------------------------
_PUNCTUATION = re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])")
_PERIOD_COMMA_AFTER = re.compile(r"([^0-9])([\.,])")  # split . and , unless after a digit
_PERIOD_COMMA_BEFORE = re.compile(r"([\.,])([^0-9])")  # ... or unless before one
_DASH_AFTER_DIGIT = re.compile(r"([0-9])(-)")


def tokenize_13a(line: str) -> list[str]:
    """Return the tokens of mteval-v13a (WMT's tokenization, sacrebleu's default): punctuation
    split off, except periods and commas inside numbers."""
    line = line.rstrip().replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    line = f" {line} "
    line = _PUNCTUATION.sub(r" \1 ", line)
    line = _PERIOD_COMMA_AFTER.sub(r"\1 \2 ", line)
    line = _PERIOD_COMMA_BEFORE.sub(r" \1 \2", line)
    line = _DASH_AFTER_DIGIT.sub(r"\1 \2 ", line)
    return line.split()


def _ngrams(tokens: list[str], max_order: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for n in range(1, max_order + 1) for i in range(len(tokens) - n + 1))


@dataclass
class BLEUScore:
    """A corpus BLEU: `score` in 0..100, the n-gram `precisions` (percent), brevity penalty `bp`,
    and the hypothesis and reference lengths in tokens."""

    score: float
    precisions: list[float]
    bp: float
    sys_len: int
    ref_len: int

    def __str__(self) -> str:
        precisions = "/".join(f"{p:.1f}" for p in self.precisions)
        return f"BLEU = {self.score:.2f} {precisions} (BP = {self.bp:.3f}, hyp_len = {self.sys_len}, ref_len = {self.ref_len})"


def corpus_bleu(hypotheses: list[str], references: list[list[str]], max_order: int = 4) -> BLEUScore:
    """Return the BLEU of hypotheses against references, as sacrebleu's `corpus_bleu`.

    references is a list of reference streams, each with one reference per hypothesis (so
    `[refs]` for one reference each). Per sentence: clipped n-gram matches against the most
    generous reference, and the reference length closest to the hypothesis's (the shorter on a
    tie); over the corpus: the geometric mean of the n-gram precisions, where an order with no
    match counts as 1 / (2^k * total) for the k-th such order, times exp(1 - ref_len / sys_len)
    when the hypotheses are shorter.
    """
    if isinstance(hypotheses, str) or any(isinstance(stream, str) for stream in references):
        raise ArgumentError("corpus_bleu takes a list of hypotheses and a list of reference lists")
    for stream in references:
        if len(stream) != len(hypotheses):
            raise ShapeError(f"a reference stream has {len(stream)} sentences for {len(hypotheses)} hypotheses")
    correct, total = [0] * max_order, [0] * max_order
    sys_len = ref_len = 0
    for i, hypothesis in enumerate(hypotheses):
        reference_ngrams: Counter = Counter()
        lengths = []
        for stream in references:
            tokens = tokenize_13a(stream[i])
            lengths.append(len(tokens))
            for ngram, count in _ngrams(tokens, max_order).items():
                reference_ngrams[ngram] = max(reference_ngrams[ngram], count)
        tokens = tokenize_13a(hypothesis)
        sys_len += len(tokens)
        ref_len += min(lengths, key=lambda length: (abs(length - len(tokens)), length))
        for ngram, count in _ngrams(tokens, max_order).items():
            total[len(ngram) - 1] += count
            correct[len(ngram) - 1] += min(count, reference_ngrams[ngram])
    bp = 1.0 if sys_len >= ref_len else (math.exp(1 - ref_len / sys_len) if sys_len else 0.0)
    precisions = [0.0] * max_order
    if not any(correct):
        return BLEUScore(0.0, precisions, bp, sys_len, ref_len)
    smoothing = 1.0
    for n in range(max_order):
        if total[n] == 0:
            break
        if correct[n] == 0:
            smoothing *= 2
            precisions[n] = 100.0 / (smoothing * total[n])
        else:
            precisions[n] = 100.0 * correct[n] / total[n]
    log_mean = sum(math.log(p) if p > 0 else -9999999999 for p in precisions) / max_order
    return BLEUScore(bp * math.exp(log_mean), precisions, bp, sys_len, ref_len)
