"""Sampling text from any autoregressive model: greedy, temperature, top-k, top-p (nucleus),
min-p and a repetition penalty, token by token (`stream`) or whole sequences (`generate`), with a
KV cache by default. Generation ends at the model's end-of-sequence token unless told otherwise,
and at any of the given stop strings.

A model works here if it has
- `model(ids, cache=cache)` -> logits (B, T, V) for the T new token ids (B, T) given, where
  `cache` (or None) holds the keys and values of the positions before them;
- `model.new_cache(batch_size)` -> an empty cache with a `.position` (positions held) and `.reset()`;
- `model.config.block_size`, the longest context the model accepts;
- optionally `model.tokenizer` (with `eos_id`, and `decode_bytes` or `decode`), for the default
  end-of-sequence token and for stop strings.

When the context is full: without a cache each step feeds the last `block_size` tokens (a sliding
window, as nanoGPT). With a cache, positions are absolute and cannot slide, so when the cache holds
`block_size` positions it is emptied and refilled from the last `block_size - block_size // 4`
tokens (one prefill, then a quarter block of cheap steps). Up to the first refill both ways give
the same logits; after it, the cached way sees a context between 3/4 and all of a block.

Prompts of different lengths in one cached `generate` call run as one batch, left-padded to the
longest: the cache is told each row's padding (`KVCache.set_padding`), so no real token attends to
a padding position and each row counts its positions from its first real token, and every
sequence gets the tokens it would get alone. Each row is padded with copies of its own first
token, which keeps the ids valid and leaves the repetition penalty as it was. Where the context
would fill up (longest prompt + max_new_tokens - 1 > block_size) the rows would refill at
different steps alone, and without a cache the sliding window has no padding mask; there the
prompts run as one batch per length instead (the results in prompt order either way).

Random draws come from `tinyllm.backend.RANDOM` (seeded by `tl.manual_seed`) or, when `seed` is
given, from a generator of its own, so a seeded call gives the same tokens every time and leaves
the global stream alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from tinyllm.autograd.grad_mode import no_grad
from tinyllm.autograd.tensor import Tensor
from tinyllm.backend import RANDOM, HostRandom, np
from tinyllm.errors import ArgumentError, DTypeError, ShapeError
from tinyllm.validate import check_float, check_int, check_token_ids

# -- sampling one token per row -------------------------------------------------------------------


def top_k_filter(logits: np.ndarray, k: int) -> np.ndarray:
    """Return logits (B, V) with -inf wherever a logit is below its row's k-th largest (ties kept)."""
    if k >= logits.shape[-1]:
        return logits
    kth_largest = np.partition(logits, -k, axis=-1)[:, -k][:, None]  # (B, 1)
    return np.where(logits < kth_largest, -np.inf, logits)  # (B, V)


def top_p_filter(logits: np.ndarray, p: float) -> np.ndarray:
    """Return logits (B, V) with -inf outside each row's nucleus: the most probable tokens, in
    order, while the probability mass before a token is below p (the first token always stays)."""
    if p >= 1.0:
        return logits
    probs = softmax(logits)  # (B, V)
    order = np.argsort(-probs, axis=-1, kind="stable")  # (B, V), most probable first
    sorted_probs = np.take_along_axis(probs, order, axis=-1)  # (B, V)
    mass_before = np.cumsum(sorted_probs, axis=-1) - sorted_probs  # (B, V)
    keep_sorted = mass_before < p  # (B, V)
    keep = np.zeros_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=-1)
    return np.where(keep, logits, -np.inf)  # (B, V)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Return the row-wise softmax (B, V) of host logits, in float64."""
    shifted = logits.astype(np.float64) - np.max(logits, axis=-1, keepdims=True)  # (B, V)
    e = np.exp(shifted)
    return e / np.sum(e, axis=-1, keepdims=True)


def min_p_filter(logits: np.ndarray, min_p: float) -> np.ndarray:
    """Return logits (B, V) with -inf wherever a token's probability is below min_p times its row's
    largest probability (the most probable token always stays)."""
    if min_p <= 0.0:
        return logits
    # p_i >= min_p * p_max  <=>  logit_i >= logit_max + log(min_p)
    threshold = np.max(logits, axis=-1, keepdims=True) + np.log(min_p)  # (B, 1)
    return np.where(logits < threshold, -np.inf, logits)  # (B, V)


def apply_repetition_penalty(logits: np.ndarray, tokens: np.ndarray, penalty: float) -> np.ndarray:
    """Return logits (B, V) with every token id already in its row of tokens (B, L) made less likely:
    a positive logit divided by penalty, a negative one multiplied (CTRL's rule, as in transformers)."""
    if penalty == 1.0:
        return logits
    logits = logits.copy()
    rows = np.arange(logits.shape[0])[:, None]  # (B, 1)
    seen = logits[rows, tokens]  # (B, L)
    logits[rows, tokens] = np.where(seen > 0, seen / penalty, seen * penalty)
    return logits


def check_sampling(
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    min_p: float | None = None,
    repetition_penalty: float = 1.0,
) -> None:
    """Raise ArgumentError naming the setting unless temperature >= 0 (0 greedy, not NaN), top_k >= 1,
    top_p in (0, 1], min_p in [0, 1] and repetition_penalty > 0 (None: that filter is off)."""
    check_float("temperature", temperature, minimum=0.0)
    if top_k is not None:
        check_int("top_k", top_k, minimum=1)
    if top_p is not None:
        check_float("top_p", top_p, above=0.0, maximum=1.0)
    if min_p is not None:
        check_float("min_p", min_p, minimum=0.0, maximum=1.0)
    check_float("repetition_penalty", repetition_penalty, above=0.0)


def sample_next(
    logits: np.ndarray,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    rng: HostRandom | None = None,
    min_p: float | None = None,
) -> np.ndarray:
    """Return one token id per row (B,) drawn from host logits (B, V).

    temperature 0 is greedy (argmax; the filters change nothing then). Otherwise the logits are
    divided by the temperature, cut to the top_k largest, then to the top_p nucleus, then to the
    tokens at least min_p times as likely as the most likely one, and a token is drawn from the
    softmax of what is left.
    """
    check_sampling(temperature, top_k, top_p, min_p)
    logits = np.asarray(logits, dtype=np.float64)  # (B, V)
    if logits.ndim != 2 or logits.shape[1] == 0:
        raise ShapeError(f"logits must have shape (batch, vocab) with a vocab of at least 1, got {logits.shape}")
    if temperature == 0:
        return np.argmax(logits, axis=-1)  # (B,)
    logits = logits / temperature  # (B, V)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    if min_p is not None:
        logits = min_p_filter(logits, min_p)
    probs = softmax(logits)  # (B, V)
    rng = RANDOM if rng is None else rng
    return np.array([rng.choice_index(row) for row in probs], dtype=np.int64)  # (B,)


# -- the decoding loop ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sampling:
    """How each next token is chosen (checked on construction; see `sample_next`)."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repetition_penalty: float = 1.0

    def __post_init__(self) -> None:
        check_sampling(self.temperature, self.top_k, self.top_p, self.min_p, self.repetition_penalty)

    def next_ids(self, logits: np.ndarray, tokens: np.ndarray, rng) -> np.ndarray:
        """Return the (B,) next ids for the last-position logits (B, V) after tokens (B, L)."""
        logits = apply_repetition_penalty(np.asarray(logits, dtype=np.float64), tokens, self.repetition_penalty)
        return sample_next(logits, self.temperature, self.top_k, self.top_p, rng, self.min_p)


def _as_prompts(ids) -> list[np.ndarray]:
    """Return prompt ids as a list of host int64 arrays (T,): from a list of ints, a list of lists
    (of any lengths), or a 1-D / 2-D integer tensor or array."""
    if isinstance(ids, (list, tuple)) and ids and all(isinstance(row, (list, tuple, np.ndarray)) for row in ids):
        rows = [np.asarray(row) for row in ids]
    else:
        array = ids.numpy() if isinstance(ids, Tensor) else np.asarray(ids)
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2:
            raise ShapeError(f"prompts must be one sequence (T,) or a batch (B, T), got shape {array.shape}")
        rows = list(array)
    for index, row in enumerate(rows):
        if row.ndim != 1:
            raise ShapeError(f"prompt {index} must be a flat sequence of token ids, got shape {row.shape}")
        if row.size == 0:
            raise ShapeError("generation needs a prompt of at least one token" + (f" (prompt {index})" * (index > 0)))
        if row.dtype.kind not in "iu":
            raise DTypeError(f"prompt token ids must be integers, got dtype {row.dtype}")
    return [row.astype(np.int64) for row in rows]


def _model_device(model) -> str | None:
    for param in model.parameters():
        return param.device
    return None


def _check_prompt_ids(model, prompts: np.ndarray) -> None:
    vocab_size = getattr(model.config, "vocab_size", None)
    if vocab_size is not None:
        check_token_ids(prompts, vocab_size, "prompt token ids")


def _token_steps(
    model, prompts: np.ndarray, max_new_tokens: int, sampling: Sampling, rng, use_cache: bool, padding=None
):
    """Yield the (B,) array of sampled ids of each new position, under no_grad and eval mode.

    padding: with a cache, the (B,) left-padding lengths of the prompts (B, T), or None."""
    block_size = model.config.block_size
    if prompts.shape[1] > block_size:
        raise ShapeError(f"prompt of {prompts.shape[1]} tokens is longer than the model's context length {block_size}")
    _check_prompt_ids(model, prompts)
    device = _model_device(model)
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        with no_grad():
            tokens = prompts  # (B, L), grows by one column per step
            cache = model.new_cache(prompts.shape[0]) if use_cache else None
            if padding is not None:
                cache.set_padding(padding)
            pending = tokens[:, -block_size:]  # (B, T) tokens not yet seen by the cache
            for _ in range(max_new_tokens):
                if cache is None:
                    feed = tokens[:, -block_size:]  # (B, T<=block)
                else:
                    if cache.position + pending.shape[1] > block_size:
                        cache.reset()
                        pending = tokens[:, -max(1, block_size - block_size // 4) :]
                    feed = pending
                logits = model(Tensor(feed, device=device), cache=cache)  # (B, T, V)
                next_ids = sampling.next_ids(logits.numpy()[:, -1], tokens, rng)  # (B,)
                tokens = np.concatenate([tokens, next_ids[:, None]], axis=1)  # (B, L+1)
                pending = next_ids[:, None]  # (B, 1)
                yield next_ids
    finally:
        model.train(was_training)


def end_of_sequence_id(model) -> int | None:
    """Return the model's end-of-sequence token id: `model.eos_token_id`, else its tokenizer's `eos_id`."""
    eos = getattr(model, "eos_token_id", None)
    if eos is None:
        eos = getattr(getattr(model, "tokenizer", None), "eos_id", None)
    return eos


def _stop_set(model, stop) -> frozenset:
    """Return the stop ids: stop=None means the model's end-of-sequence token (if it has one)."""
    if stop is None:
        eos = end_of_sequence_id(model)
        return frozenset() if eos is None else frozenset([int(eos)])
    if isinstance(stop, (int, np.integer)) and not isinstance(stop, bool):
        return frozenset([int(stop)])
    if isinstance(stop, Iterable) and not isinstance(stop, (str, bytes)):
        stop = list(stop)
        return frozenset(check_int(f"stop[{i}]", s, minimum=0) for i, s in enumerate(stop))
    raise ArgumentError(f"stop must be a token id, a collection of token ids or None, got {stop!r}")


class _StopStrings:
    """Tells whether the newest token completes one of the stop strings."""

    def __init__(self, model, strings, tokenizer) -> None:
        if isinstance(strings, str):
            strings = [strings]
        strings = list(strings or ())
        for index, text in enumerate(strings):
            if not isinstance(text, str) or not text:
                raise ArgumentError(f"stop_strings[{index}] must be a non-empty string, got {text!r}")
        tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
        if strings and tokenizer is None:
            raise ArgumentError("stop_strings need a tokenizer: pass tokenizer=... (the model has none)")
        self.tokenizer = tokenizer
        self.targets = [s.encode("utf-8") for s in strings]
        # every token spells at least one byte, so a match ending in the newest token lies in the
        # last `longest` tokens
        self.window = max((len(t) for t in self.targets), default=0)

    def __bool__(self) -> bool:
        return bool(self.targets)

    def completed_by(self, generated: list[int]) -> bool:
        """Return whether a stop string ends inside the bytes of the newest generated token."""
        pieces = [self._bytes(token) for token in generated[-self.window :]]
        text = b"".join(pieces)
        boundary = len(text) - len(pieces[-1])  # a match ending before it was found a step earlier
        return any((start := text.rfind(target)) >= 0 and start + len(target) > boundary for target in self.targets)

    def _bytes(self, token: int) -> bytes:
        if hasattr(self.tokenizer, "decode_bytes"):
            return self.tokenizer.decode_bytes([token])
        return self.tokenizer.decode([token]).encode("utf-8")


def stream(
    model,
    ids,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    stop=None,
    seed: int | None = None,
    use_cache: bool = True,
    min_p: float | None = None,
    repetition_penalty: float = 1.0,
    stop_strings=None,
    tokenizer=None,
) -> Iterator[int]:
    """Yield the new token ids of one prompt (list of ints or 1-D tensor), one by one, as soon as
    each is sampled.

    The stream ends, the token unyielded, at a token in `stop` (an id or a collection of ids;
    None: the model's end-of-sequence token; () for none), or at the token that completes one of
    `stop_strings` (decoded with `tokenizer`, default `model.tokenizer`).
    """
    sampling = Sampling(temperature, top_k, top_p, min_p, repetition_penalty)
    max_new_tokens = check_int("max_new_tokens", max_new_tokens, minimum=0)
    if seed is not None:
        check_int("seed", seed)
    prompts = _as_prompts(ids)
    if len(prompts) != 1:
        raise ShapeError(f"stream() takes one prompt, got a batch of {len(prompts)}; use generate()")
    stops = _stop_set(model, stop)
    stop_text = _StopStrings(model, stop_strings, tokenizer)
    rng = RANDOM if seed is None else HostRandom(seed)
    generated: list[int] = []
    for next_ids in _token_steps(model, prompts[0][None, :], max_new_tokens, sampling, rng, use_cache):
        token = int(next_ids[0])
        generated.append(token)
        if token in stops or (stop_text and stop_text.completed_by(generated)):
            return
        yield token


def generate(
    model,
    ids,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    num_return_sequences: int = 1,
    stop=None,
    seed: int | None = None,
    use_cache: bool = True,
    min_p: float | None = None,
    repetition_penalty: float = 1.0,
    stop_strings=None,
    tokenizer=None,
) -> list[list[int]]:
    """Return a list of token-id lists, prompt included: `num_return_sequences` continuations of
    each prompt, in prompt order (prompt 0's sequences first).

    ids is one prompt (list of ints, 1-D tensor) or a batch (list of lists of any lengths, (B, T)
    tensor). Each sequence gets up to max_new_tokens new tokens; one that samples a token in
    `stop` (None: the model's end-of-sequence token; () for none) ends there, the stop token left
    out, and one whose newest token completes one of `stop_strings` ends with that token left out,
    while the others go on.
    """
    sampling = Sampling(temperature, top_k, top_p, min_p, repetition_penalty)
    max_new_tokens = check_int("max_new_tokens", max_new_tokens, minimum=0)
    num_return_sequences = check_int("num_return_sequences", num_return_sequences, minimum=1)
    if seed is not None:
        check_int("seed", seed)
    prompts = _as_prompts(ids)
    stops = _stop_set(model, stop)
    stop_text = _StopStrings(model, stop_strings, tokenizer)
    rng = RANDOM if seed is None else HostRandom(seed)
    results: list[list[int] | None] = [None] * (len(prompts) * num_return_sequences)
    longest = max(len(prompt) for prompt in prompts)
    if use_cache and longest + max_new_tokens - 1 <= model.config.block_size:
        groups = [list(range(len(prompts)))]
    else:
        by_length: dict[int, list[int]] = {}
        for index, prompt in enumerate(prompts):
            by_length.setdefault(len(prompt), []).append(index)
        groups = list(by_length.values())
    for indices in groups:
        batch = [prompts[i] for i in indices for _ in range(num_return_sequences)]
        sequences = _generate_batch(model, batch, max_new_tokens, sampling, rng, use_cache, stops, stop_text)
        for row, sequence in enumerate(sequences):
            results[indices[row // num_return_sequences] * num_return_sequences + row % num_return_sequences] = sequence
    return results


def _left_padded(prompts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """Return prompts of any lengths as one (B, T) array, each row left-padded with copies of its
    first token, and the (B,) padding lengths (None when all lengths agree)."""
    longest = max(len(prompt) for prompt in prompts)
    padding = np.array([longest - len(prompt) for prompt in prompts], dtype=np.int64)  # (B,)
    batch = np.stack([np.concatenate([np.full(pad, prompt[0]), prompt]) for pad, prompt in zip(padding, prompts)])
    return batch.astype(np.int64), (padding if padding.any() else None)  # (B, T), (B,)


def _generate_batch(model, prompts, max_new_tokens, sampling, rng, use_cache, stops, stop_text) -> list[list[int]]:
    """Return the sequences of one batch of prompts (a list of (T_b,) arrays; of different
    lengths only with a cache)."""
    batch, padding = _left_padded(prompts)  # (B, T), (B,) or None
    sequences = [prompt.tolist() for prompt in prompts]
    lengths = [len(prompt) for prompt in prompts]
    finished = [False] * len(sequences)
    for next_ids in _token_steps(model, batch, max_new_tokens, sampling, rng, use_cache, padding):
        for row, token in enumerate(next_ids.tolist()):
            if finished[row]:
                continue
            sequences[row].append(token)
            if token in stops or (stop_text and stop_text.completed_by(sequences[row][lengths[row] :])):
                sequences[row].pop()
                finished[row] = True
        if all(finished):
            break
    return sequences


class GenerationMixin:
    """`model.generate(...)` and `model.stream(...)` for any model that follows the protocol above
    (GPT and Llama inherit it), as the methods read in PyTorch / Hugging Face code."""

    def generate(self, idx, max_new_tokens: int, **options) -> list[list[int]]:
        """Return the prompt(s) continued by up to max_new_tokens sampled tokens, as a list of
        lists of ints (prompt included), `num_return_sequences` per prompt, in prompt order.

        idx is one prompt (list of ints, 1-D tensor) or a batch of prompts (list of lists, (B, T)
        tensor); temperature 0 is greedy; generation stops at the model's end-of-sequence token
        unless `stop` says otherwise. Options: see `generate` in this module.
        """
        return generate(self, idx, max_new_tokens, **options)

    def stream(self, idx, max_new_tokens: int, **options) -> Iterator[int]:
        """Yield the new token ids of one prompt one by one (see `stream` in this module)."""
        return stream(self, idx, max_new_tokens, **options)
