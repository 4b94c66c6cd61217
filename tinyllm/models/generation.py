"""Sampling text from any autoregressive model: greedy, temperature, top-k and top-p (nucleus),
token by token (`stream`) or whole sequences (`generate`), with a KV cache by default.

A model works here if it has
- `model(ids, cache=cache)` -> logits (B, T, V) for the T new token ids (B, T) given, where
  `cache` (or None) holds the keys and values of the positions before them;
- `model.new_cache(batch_size)` -> an empty cache with a `.position` (positions held) and `.reset()`;
- `model.config.block_size`, the longest context the model accepts.

When the context is full: without a cache each step feeds the last `block_size` tokens (a sliding
window, as nanoGPT). With a cache, positions are absolute and cannot slide, so when the cache holds
`block_size` positions it is emptied and refilled from the last `block_size - block_size // 4`
tokens (one prefill, then a quarter block of cheap steps). Up to the first refill both ways give
the same logits; after it, the cached way sees a context between 3/4 and all of a block.

Random draws come from `tinyllm.backend.RANDOM` (seeded by `tl.manual_seed`) or, when `seed` is
given, from a generator of its own, so a seeded call gives the same tokens every time and leaves
the global stream alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from tinyllm.autograd.grad_mode import no_grad
from tinyllm.autograd.tensor import Tensor
from tinyllm.backend import RANDOM, HostRandom, np
from tinyllm.errors import ConfigError, DTypeError, ShapeError

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


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Raise ConfigError for a negative temperature, top_k < 1 or top_p outside (0, 1]."""
    if temperature < 0:
        raise ConfigError(f"temperature must be >= 0 (0 means greedy), got {temperature}")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ConfigError(f"top_k must be a positive integer or None, got {top_k!r}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ConfigError(f"top_p must be in (0, 1] or None, got {top_p}")


def sample_next(
    logits: np.ndarray,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    rng: HostRandom | None = None,
) -> np.ndarray:
    """Return one token id per row (B,) drawn from host logits (B, V).

    temperature 0 is greedy (argmax; top_k and top_p change nothing then). Otherwise the logits
    are divided by the temperature, cut to the top_k largest, then to the top_p nucleus, and a
    token is drawn from the softmax of what is left.
    """
    check_sampling(temperature, top_k, top_p)
    logits = np.asarray(logits, dtype=np.float64)  # (B, V)
    if temperature == 0:
        return np.argmax(logits, axis=-1)  # (B,)
    logits = logits / temperature  # (B, V)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = softmax(logits)  # (B, V)
    rng = RANDOM if rng is None else rng
    return np.array([rng.choice_index(row) for row in probs], dtype=np.int64)  # (B,)


# -- the decoding loop ----------------------------------------------------------------------------


def _as_prompts(ids) -> np.ndarray:
    """Return prompt ids as a host int64 array (B, T): from a list of ints, a list of equal-length
    lists, or a 1-D / 2-D integer tensor or array."""
    try:
        array = ids.numpy() if isinstance(ids, Tensor) else np.asarray(ids)
    except ValueError:
        raise ShapeError("prompts in one batch must all have the same length") from None
    if array.size and array.dtype.kind not in "iu":
        raise DTypeError(f"prompt token ids must be integers, got dtype {array.dtype}")
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ShapeError(f"prompts must be one sequence (T,) or a batch (B, T) of one length, got shape {array.shape}")
    if array.shape[1] == 0:
        raise ShapeError("generation needs a prompt of at least one token")
    return array.astype(np.int64)


def _model_device(model) -> str | None:
    for param in model.parameters():
        return param.device
    return None


def _token_steps(model, prompts: np.ndarray, max_new_tokens: int, temperature, top_k, top_p, rng, use_cache):
    """Yield the (B,) array of sampled ids of each new position, under no_grad and eval mode."""
    block_size = model.config.block_size
    if prompts.shape[1] > block_size:
        raise ShapeError(f"prompt of {prompts.shape[1]} tokens is longer than the model's context length {block_size}")
    device = _model_device(model)
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        with no_grad():
            tokens = prompts  # (B, L), grows by one column per step
            cache = model.new_cache(prompts.shape[0]) if use_cache else None
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
                next_ids = sample_next(logits.numpy()[:, -1], temperature, top_k, top_p, rng)  # (B,)
                tokens = np.concatenate([tokens, next_ids[:, None]], axis=1)  # (B, L+1)
                pending = next_ids[:, None]  # (B, 1)
                yield next_ids
    finally:
        model.train(was_training)


def _stop_set(stop) -> frozenset:
    if stop is None:
        return frozenset()
    if isinstance(stop, (int, np.integer)):
        return frozenset([int(stop)])
    if isinstance(stop, Iterable):
        return frozenset(int(s) for s in stop)
    raise ConfigError(f"stop must be a token id, a collection of token ids or None, got {stop!r}")


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
) -> Iterator[int]:
    """Yield the new token ids of one prompt (list of ints or 1-D tensor), one by one, as soon as
    each is sampled; a token in `stop` (an id or a collection of ids) ends the stream unyielded."""
    check_sampling(temperature, top_k, top_p)
    prompts = _as_prompts(ids)
    if prompts.shape[0] != 1:
        raise ShapeError(f"stream() takes one prompt, got a batch of {prompts.shape[0]}; use generate()")
    stops = _stop_set(stop)
    rng = RANDOM if seed is None else HostRandom(seed)
    for next_ids in _token_steps(model, prompts, max_new_tokens, temperature, top_k, top_p, rng, use_cache):
        token = int(next_ids[0])
        if token in stops:
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
) -> list[list[int]]:
    """Return a list of token-id lists, prompt included: `num_return_sequences` continuations of
    each prompt, in prompt order (prompt 0's sequences first).

    ids is one prompt (list of ints, 1-D tensor) or a batch of equal-length prompts (list of
    lists, (B, T) tensor). Each sequence gets up to max_new_tokens new tokens; one that samples a
    token in `stop` ends there, the stop token left out, while the others go on.
    """
    check_sampling(temperature, top_k, top_p)
    if num_return_sequences < 1:
        raise ConfigError(f"num_return_sequences must be >= 1, got {num_return_sequences}")
    prompts = np.repeat(_as_prompts(ids), num_return_sequences, axis=0)  # (B*n, T)
    stops = _stop_set(stop)
    rng = RANDOM if seed is None else HostRandom(seed)
    sequences = [row.tolist() for row in prompts]
    finished = [False] * len(sequences)
    for next_ids in _token_steps(model, prompts, max_new_tokens, temperature, top_k, top_p, rng, use_cache):
        for row, token in enumerate(next_ids.tolist()):
            if finished[row]:
                continue
            if token in stops:
                finished[row] = True
            else:
                sequences[row].append(token)
        if all(finished):
            break
    return sequences


class GenerationMixin:
    """`model.generate(...)` and `model.stream(...)` for any model that follows the protocol above
    (GPT and Llama inherit it), as the methods read in PyTorch / Hugging Face code."""

    def generate(
        self,
        idx,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        num_return_sequences: int = 1,
        stop=None,
        seed: int | None = None,
        use_cache: bool = True,
    ) -> list[list[int]]:
        """Return the prompt(s) continued by up to max_new_tokens sampled tokens, as a list of
        lists of ints (prompt included), `num_return_sequences` per prompt, in prompt order.

        idx is one prompt (list of ints, 1-D tensor) or a batch of prompts of one length (list of
        lists, (B, T) tensor); temperature 0 is greedy. See `generate` in this module.
        """
        return generate(
            self,
            idx,
            max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            num_return_sequences=num_return_sequences,
            stop=stop,
            seed=seed,
            use_cache=use_cache,
        )

    def stream(self, idx, max_new_tokens: int, **options) -> Iterator[int]:
        """Yield the new token ids of one prompt one by one (see `stream` in this module)."""
        return stream(self, idx, max_new_tokens, **options)
