"""Masked-language-model pretraining of a BERT encoder (the objective of Devlin et al. 2018).

For each sequence, 15% of the ordinary tokens are chosen (special tokens and padding never are);
of those, 80% become [MASK], 10% a random token, 10% stay as they are. The loss is the
cross-entropy of predicting the original token at the chosen positions only (labels elsewhere
are IGNORE_INDEX). Keeping some chosen tokens unchanged, and corrupting others, keeps the model
from learning that only [MASK] positions matter.

The corpus is tokenized once, cut into random windows of seq_len - 2 tokens, and each window is
framed as [CLS] window [SEP].
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tinyllm.autograd.grad_mode import no_grad
from tinyllm.backend import HostRandom, np
from tinyllm.errors import DataError
from tinyllm.models.bert_heads import IGNORE_INDEX, BertForMaskedLM
from tinyllm.optim import AdamW, WarmupCosine, clip_grad_norm, set_lr, weight_decay_groups
from tinyllm.tokenizers.wordpiece import WordPieceTokenizer


def mask_tokens(
    input_ids: np.ndarray,
    special: np.ndarray,
    mask_token_id: int,
    vocab_size: int,
    random: HostRandom,
    mlm_probability: float = 0.15,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (corrupted ids, labels), both (B, T) int64, for ids (B, T) and a bool mask of
    special/padding positions (B, T) that are never chosen. labels hold the original id at the
    chosen positions and IGNORE_INDEX elsewhere."""
    chosen = (random.uniform(input_ids.shape, "float64") < mlm_probability) & ~special  # (B, T)
    labels = np.where(chosen, input_ids, IGNORE_INDEX)  # (B, T)
    action = random.uniform(input_ids.shape, "float64")  # (B, T): < 0.8 mask, < 0.9 random, else keep
    corrupted = input_ids.copy()
    corrupted[chosen & (action < 0.8)] = mask_token_id
    replace = chosen & (action >= 0.8) & (action < 0.9)
    corrupted[replace] = random.integers(0, vocab_size, int(replace.sum()))
    return corrupted, labels.astype(np.int64)


class MLMWindows:
    """Random [CLS] window [SEP] rows (B, seq_len) cut from a token stream, seeded and repeatable."""

    def __init__(self, ids: np.ndarray, tokenizer: WordPieceTokenizer, seq_len: int, seed: int = 0) -> None:
        if seq_len < 3:
            raise DataError(f"seq_len must be at least 3 ([CLS] token [SEP]), got {seq_len}")
        if len(ids) < seq_len - 2:
            raise DataError(f"the corpus has {len(ids)} tokens, fewer than one window of {seq_len - 2}")
        self.ids, self.tokenizer, self.seq_len = np.asarray(ids, dtype=np.int64), tokenizer, seq_len
        self.random = HostRandom(seed)

    def sample(self, batch_size: int) -> np.ndarray:
        """Return a batch of token rows (B, seq_len), each framed by [CLS] and [SEP]."""
        width = self.seq_len - 2
        starts = self.random.integers(0, len(self.ids) - width + 1, batch_size)  # (B,)
        body = self.ids[starts[:, None] + np.arange(width)[None, :]]  # (B, width)
        cls = np.full((batch_size, 1), self.tokenizer.cls_token_id, dtype=np.int64)
        sep = np.full((batch_size, 1), self.tokenizer.sep_token_id, dtype=np.int64)
        return np.concatenate([cls, body, sep], axis=1)  # (B, seq_len)

    def masked_batch(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (corrupted ids, labels) of a fresh batch, both (B, seq_len)."""
        rows = self.sample(batch_size)
        special = np.isin(rows, sorted(self.tokenizer.special_ids))  # (B, seq_len)
        return mask_tokens(rows, special, self.tokenizer.mask_token_id, self.tokenizer.vocab_size, self.random)


@dataclass
class MLMConfig:
    """Hyper-parameters of a pretraining run."""

    steps: int = 2000
    batch_size: int = 32
    seq_len: int = 64
    lr: float = 5e-4
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    eval_batches: int = 4
    eval_every: int = 200
    seed: int = 0


@dataclass
class MLMHistory:
    """Training losses per step and held-out masked-token losses [(step, loss)]."""

    train_loss: list = field(default_factory=list)
    eval_loss: list = field(default_factory=list)
    seconds: float = 0.0


def masked_lm_loss(model: BertForMaskedLM, batches: list) -> float:
    """Return the mean masked-token cross-entropy over fixed (ids, labels) batches, in eval mode."""
    was_training = model.training
    model.eval()
    total = 0.0
    with no_grad():
        for ids, labels in batches:
            total += model(ids, labels=labels).loss.item()
    model.train(was_training)
    return total / len(batches)


def pretrain_mlm(
    model: BertForMaskedLM,
    train_ids: np.ndarray,
    eval_ids: np.ndarray,
    tokenizer: WordPieceTokenizer,
    config: MLMConfig,
    progress: bool = True,
) -> MLMHistory:
    """Pretrain model with the masked-LM objective on token streams; return the loss history.

    AdamW (decay on matrices only), linear warmup then cosine decay, gradient clipping; the
    held-out loss is measured on fixed masked batches of eval_ids every eval_every steps.
    """
    from tqdm.auto import tqdm

    train = MLMWindows(train_ids, tokenizer, config.seq_len, seed=config.seed)
    held_out = MLMWindows(eval_ids, tokenizer, config.seq_len, seed=config.seed + 1)
    eval_batches = [held_out.masked_batch(config.batch_size) for _ in range(config.eval_batches)]
    optimizer = AdamW(weight_decay_groups(model, config.weight_decay), lr=config.lr)
    schedule = WarmupCosine(config.lr, config.warmup_steps, config.steps, min_lr=config.lr / 10)
    history = MLMHistory()
    history.eval_loss.append((0, masked_lm_loss(model, eval_batches)))
    model.train()
    start = time.perf_counter()
    bar = tqdm(range(config.steps), desc="mlm pretraining", disable=not progress, unit="step")
    for step in bar:
        set_lr(optimizer, schedule(step))
        ids, labels = train.masked_batch(config.batch_size)
        loss = model(ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        clip_grad_norm(model.parameters(), config.grad_clip)
        optimizer.step()
        history.train_loss.append(loss.item())
        if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
            history.eval_loss.append((step + 1, masked_lm_loss(model, eval_batches)))
        bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}", held_out=f"{history.eval_loss[-1][1]:.3f}")
    history.seconds = time.perf_counter() - start
    model.eval()
    return history
