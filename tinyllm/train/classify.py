"""Fine-tuning a BERT sequence classifier, and its evaluation (accuracy, F1).

Texts are tokenized once. Each epoch shuffles them, cuts the shuffled list into pools of
`batch_size * 50`, sorts each pool by length and slices it into batches (in shuffled order):
batches then hold sentences of similar length, so little compute goes to padding, while the
order stays random. AdamW (decay on matrices only), linear warmup and cosine decay, gradient
clipping; a tqdm progress bar shows the running loss.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tinyllm.autograd.grad_mode import no_grad
from tinyllm.backend import HostRandom, np
from tinyllm.errors import DataError
from tinyllm.metrics import accuracy, precision_recall_f1
from tinyllm.optim import AdamW, WarmupCosine, clip_grad_norm, set_lr, weight_decay_groups


@dataclass
class FinetuneConfig:
    """Hyper-parameters of a fine-tuning run.

    The defaults fine-tune MiniLM to 0.858 test accuracy on the VADER split (0.848 after epoch 1,
    0.859 after epoch 2). The word-embedding table (30522 x 384) is frozen: no gradient scatter
    and no AdamW update of its 11.7M entries, about 0.8x the time per step.
    """

    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-4
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    max_length: int = 64
    freeze_word_embeddings: bool = True
    seed: int = 0


@dataclass
class FinetuneHistory:
    """Loss per optimizer step and the wall time of the training loop (epoch-end callbacks excluded)."""

    loss: list = field(default_factory=list)
    seconds: float = 0.0


def _encode(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


def _pad(rows: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (ids, attention mask), both (B, T_max) int64, of token rows padded on the right."""
    width = max(len(row) for row in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


def length_bucketed_batches(lengths: list[int], batch_size: int, random: HostRandom, pool: int = 50) -> list:
    """Return index batches covering every example once: shuffled, grouped by similar length."""
    order = random.generator.permutation(len(lengths))
    batches = []
    for start in range(0, len(order), batch_size * pool):
        chunk = sorted(order[start : start + batch_size * pool], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in random.generator.permutation(len(batches))]


def finetune(
    model, texts: list[str], labels: list[int], config: FinetuneConfig, progress: bool = True, on_epoch_end=None
) -> FinetuneHistory:
    """Train a BertForSequenceClassification on (texts, labels) in place; return the loss history.

    on_epoch_end(epoch, model), if given, is called after each epoch (e.g. to evaluate).
    """
    from tqdm.auto import tqdm

    if len(texts) != len(labels) or not texts:
        raise DataError(f"need as many labels as texts (at least one), got {len(texts)} texts and {len(labels)} labels")
    tokenizer = model.tokenizer
    rows = _encode(tokenizer, texts, config.max_length)
    labels = np.asarray(labels, dtype=np.int64)
    random = HostRandom(config.seed)
    steps_per_epoch = -(-len(rows) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    word_embeddings = model.bert.embeddings.word_embeddings.weight
    word_embeddings.requires_grad = not config.freeze_word_embeddings
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {**group, "params": [p for p in group["params"] if p.requires_grad]}
        for group in weight_decay_groups(model, config.weight_decay)
    ]
    optimizer = AdamW([g for g in groups if g["params"]], lr=config.lr)
    schedule = WarmupCosine(config.lr, int(config.warmup_fraction * total_steps), total_steps)
    history = FinetuneHistory()
    model.train()
    start = time.perf_counter()
    bar = tqdm(total=total_steps, desc="fine-tuning", disable=not progress, unit="step")
    step = 0
    for epoch in range(config.epochs):
        for batch in length_bucketed_batches([len(r) for r in rows], config.batch_size, random):
            ids, mask = _pad([rows[i] for i in batch], tokenizer.pad_token_id)
            set_lr(optimizer, schedule(step))
            loss = model(ids, attention_mask=mask, labels=labels[batch]).loss
            optimizer.zero_grad()
            loss.backward()
            clip_grad_norm(trainable, config.grad_clip)
            optimizer.step()
            history.loss.append(loss.item())
            step += 1
            recent = history.loss[-20:]
            bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}")
            bar.update(1)
        if on_epoch_end is not None:
            callback_start = time.perf_counter()
            on_epoch_end(epoch, model)
            model.train()
            start += time.perf_counter() - callback_start  # the wall time counts training only
    bar.close()
    word_embeddings.requires_grad = True
    history.seconds = time.perf_counter() - start
    model.eval()
    return history


def predict(model, texts: list[str], batch_size: int = 64, max_length: int = 64) -> np.ndarray:
    """Return the predicted label of each text, (N,) int64, in eval mode without gradients."""
    rows = _encode(model.tokenizer, texts, max_length)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # similar lengths together: less padding
    predictions = np.zeros(len(rows), dtype=np.int64)
    was_training = model.training
    model.eval()
    with no_grad():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            ids, mask = _pad([rows[i] for i in batch], model.tokenizer.pad_token_id)
            predictions[batch] = model(ids, attention_mask=mask).logits.numpy().argmax(axis=-1)
    model.train(was_training)
    return predictions


def classification_scores(predictions, labels) -> dict:
    """Return accuracy and the F1 of the positive class (label 1) and macro F1 over both classes."""
    return {
        "accuracy": accuracy(predictions, labels),
        "f1": precision_recall_f1(predictions, labels, positive=1)[2],
        "macro_f1": (precision_recall_f1(predictions, labels, 0)[2] + precision_recall_f1(predictions, labels, 1)[2])
        / 2,
    }


def evaluate(model, texts: list[str], labels: list[int], batch_size: int = 64, max_length: int = 64) -> dict:
    """Return {"accuracy", "f1", "macro_f1"} of model on (texts, labels)."""
    return classification_scores(predict(model, texts, batch_size, max_length), labels)
