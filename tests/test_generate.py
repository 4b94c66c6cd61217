"""Sampling and generation: top-k/top-p never leave their set, temperature 0 is argmax, seeds
repeat, stop tokens end sequences, and the KV cache changes speed, not tokens."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyllm as tl
from tinyllm.backend import HostRandom
from tinyllm.errors import ArgumentError, DTypeError, ShapeError
from tinyllm.models import GPT, GPTConfig
from tinyllm.models.generation import (
    apply_repetition_penalty,
    generate,
    min_p_filter,
    sample_next,
    stream,
    top_k_filter,
    top_p_filter,
)

logit_rows = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 4), st.integers(2, 40)),
    elements=st.floats(-8, 8, allow_nan=False, allow_infinity=False),
)


def small_model(seed: int = 0, block_size: int = 16, **overrides) -> GPT:
    tl.manual_seed(seed)
    config = GPTConfig(vocab_size=23, block_size=block_size, n_layer=2, n_head=2, n_embd=16, **overrides)
    return GPT(config)


def probabilities(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# -- sampling one token -------------------------------------------------------------------------
@given(logits=logit_rows, k=st.integers(1, 10), temperature=st.floats(0.1, 3), seed=st.integers(0, 2**16))
def test_top_k_never_samples_outside_the_k_largest(logits, k, temperature, seed):
    rng = HostRandom(seed)
    for _ in range(5):
        picked = sample_next(logits, temperature=temperature, top_k=k, rng=rng)
        for row, token in enumerate(picked):
            assert np.sum(logits[row] > logits[row, token]) < k  # fewer than k tokens beat it


@given(logits=logit_rows, p=st.floats(0.01, 1.0), temperature=st.floats(0.1, 3), seed=st.integers(0, 2**16))
def test_top_p_never_samples_outside_the_nucleus(logits, p, temperature, seed):
    rng = HostRandom(seed)
    probs = probabilities(logits / temperature)
    for _ in range(5):
        picked = sample_next(logits, temperature=temperature, top_p=p, rng=rng)
        for row, token in enumerate(picked):
            mass_of_more_likely = probs[row][probs[row] > probs[row, token]].sum()
            assert mass_of_more_likely < p + 1e-12  # it was reached before the nucleus filled


@given(logits=logit_rows, top_k=st.none() | st.integers(1, 5), top_p=st.none() | st.floats(0.1, 1.0))
def test_temperature_zero_is_argmax(logits, top_k, top_p):
    picked = sample_next(logits, temperature=0, top_k=top_k, top_p=top_p, rng=HostRandom(0))
    np.testing.assert_array_equal(picked, np.argmax(logits, axis=-1))


def test_filters_keep_exactly_their_set():
    logits = np.array([[0.0, 3.0, 1.0, 2.0, -1.0]])
    assert np.isfinite(top_k_filter(logits, 2)).tolist() == [[False, True, False, True, False]]
    probs = probabilities(logits)[0]  # sorted: 0.64, 0.24, 0.09, ...
    kept = np.isfinite(top_p_filter(logits, 0.8))[0]
    assert kept.tolist() == [False, True, False, True, False]
    assert probs[1] < 0.8 < probs[1] + probs[3]
    assert np.isfinite(top_p_filter(logits, 1e-9)).sum() == 1  # the most likely token always stays


def test_sampling_follows_the_distribution():
    logits = np.log(np.array([[0.5, 0.3, 0.2]]))
    rng = HostRandom(0)
    draws = [int(sample_next(logits, rng=rng)[0]) for _ in range(4000)]
    np.testing.assert_allclose(np.bincount(draws, minlength=3) / 4000, [0.5, 0.3, 0.2], atol=0.03)


@pytest.mark.parametrize(
    "kwargs", [dict(temperature=-1.0), dict(top_k=0), dict(top_p=0.0), dict(top_p=1.5), dict(top_k=2.5)]
)
def test_bad_sampling_settings_raise_argument_error(kwargs):
    with pytest.raises(ArgumentError):
        sample_next(np.zeros((1, 4)), **kwargs)


# -- generation ---------------------------------------------------------------------------------
def test_greedy_generation_picks_the_argmax_of_the_model():
    model = small_model()
    (sequence,) = model.generate([1, 2, 3], 6, temperature=0)
    with tl.no_grad():
        for t in range(3, len(sequence)):
            logits = model(tl.tensor([sequence[:t]])).numpy()[0, -1]
            assert sequence[t] == int(np.argmax(logits))


@pytest.mark.parametrize("temperature,top_k,top_p", [(0, None, None), (1.0, None, None), (0.8, 5, 0.9)])
def test_the_cache_changes_no_token(temperature, top_k, top_p):
    model = small_model(1)
    kwargs = dict(temperature=temperature, top_k=top_k, top_p=top_p, seed=7, num_return_sequences=2)
    assert model.generate([[4, 5], [6, 7]], 12, **kwargs) == model.generate(
        [[4, 5], [6, 7]], 12, use_cache=False, **kwargs
    )


def test_generation_beyond_the_block_size_keeps_going():
    model = small_model(2, block_size=8)
    for use_cache in (True, False):
        (sequence,) = model.generate([1, 2, 3], 30, seed=0, use_cache=use_cache)
        assert len(sequence) == 33 and all(0 <= t < 23 for t in sequence)


def test_a_prompt_longer_than_the_block_size_is_a_shape_error():
    model = small_model(2, block_size=8)
    for use_cache in (True, False):
        with pytest.raises(ShapeError, match="prompt of 10 tokens is longer than the model's context length 8"):
            model.generate(list(range(10)), 1, use_cache=use_cache)


def test_seeded_generation_repeats_and_leaves_the_global_stream_alone():
    model = small_model(3)
    tl.manual_seed(123)
    first = model.generate([1], 10, seed=5)
    after_seeded = tl.rand(1).item()
    tl.manual_seed(123)
    assert model.generate([1], 10, seed=5) == first
    assert tl.rand(1).item() == after_seeded
    tl.manual_seed(9)
    unseeded = model.generate([1], 10)
    tl.manual_seed(9)
    assert model.generate([1], 10) == unseeded


def test_return_shape_and_order():
    model = small_model(4)
    out = model.generate(tl.tensor([[1, 2], [3, 4]]), 5, num_return_sequences=3, seed=1)
    assert len(out) == 6 and all(isinstance(t, int) for seq in out for t in seq)
    assert [seq[:2] for seq in out] == [[1, 2]] * 3 + [[3, 4]] * 3
    assert all(len(seq) == 7 for seq in out)


def test_stop_token_ends_a_sequence_without_being_kept():
    model = small_model(5)
    (free,) = model.generate([1, 2], 10, temperature=0)
    stop = free[4]  # the third new token
    first_stop = free.index(stop, 2)
    (stopped,) = model.generate([1, 2], 10, temperature=0, stop=stop)
    assert stopped == free[:first_stop]
    assert list(stream(model, [1, 2], 10, temperature=0, stop=[stop])) == free[2:first_stop]


def test_stream_yields_the_tokens_of_generate():
    model = small_model(6)
    tokens = list(stream(model, [3, 1], 8, seed=11, top_k=4))
    assert model.generate([3, 1], 8, seed=11, top_k=4) == [[3, 1] + tokens]


def test_generation_restores_training_mode():
    model = small_model(7, dropout=0.3)
    model.generate([1], 3)
    assert model.training
    model.eval()
    model.generate([1], 3)
    assert not model.training


def test_bad_prompts_raise_typed_errors():
    model = small_model(8)
    with pytest.raises(ShapeError, match="at least one token"):
        generate(model, [], 2)
    with pytest.raises(DTypeError):
        generate(model, [1.5, 2.0], 2)
    with pytest.raises(ShapeError, match="one prompt"):
        list(stream(model, [[1], [2]], 2))
    with pytest.raises(ArgumentError, match="num_return_sequences"):
        generate(model, [1], 2, num_return_sequences=0)


def test_cached_generation_runs_on_the_strict_array_api_backend():
    model = small_model(4)
    on_cpu = model.generate([1, 2, 3], 6, temperature=0)
    model.to("strict")
    assert model.generate([1, 2, 3], 6, temperature=0) == on_cpu


# -- daily-use options ------------------------------------------------------------------------------
def test_prompts_of_different_lengths_get_what_each_gets_alone():
    model = small_model(2)
    together = model.generate([[1, 2, 3], [4], [5, 6]], 5, temperature=0)
    alone = [model.generate(prompt, 5, temperature=0)[0] for prompt in ([1, 2, 3], [4], [5, 6])]
    assert together == alone


def test_generation_stops_at_the_models_end_of_sequence_token_by_default():
    model = small_model(3)
    (free,) = model.generate([1, 2], 8, temperature=0, stop=())
    model.eos_token_id = free[4]
    (stopped,) = model.generate([1, 2], 8, temperature=0)
    assert stopped == free[: free.index(free[4], 2)]
    assert model.generate([1, 2], 8, temperature=0, stop=()) == [free]


def test_stop_strings_end_the_sequence_at_the_token_that_completes_them():
    from tinyllm.tokenizers.char import CharTokenizer

    tokenizer = CharTokenizer.from_text("abcdefghijklmnopqrstuvw")  # 23 letters, the model's vocab
    model = small_model(4)
    (free,) = model.generate([1, 2], 10, temperature=0, stop=())
    target = tokenizer.decode(free[4:6])  # the third and fourth new tokens
    (stopped,) = model.generate([1, 2], 10, temperature=0, stop=(), stop_strings=[target], tokenizer=tokenizer)
    first = tokenizer.decode(free[2:]).index(target)
    assert stopped == free[: 2 + first + len(target) - 1]


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits_of_seen_tokens():
    logits = np.array([[2.0, -1.0, 3.0, -2.0]])
    penalized = apply_repetition_penalty(logits, np.array([[0, 1, 1]]), 2.0)
    assert penalized.tolist() == [[1.0, -2.0, 3.0, -2.0]]


def test_min_p_keeps_the_tokens_at_least_min_p_times_as_likely_as_the_best():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    assert np.isfinite(min_p_filter(logits, 0.25)).tolist() == [[True, True, True, False]]
    assert np.isfinite(min_p_filter(logits, 1.0)).tolist() == [[True, False, False, False]]
