"""Left-padded batches: prompts of different lengths decode as one batch, and every row gets the
logits (to float32 rounding) and the greedy tokens it gets alone, for GPT (learned and sinusoidal
positions) and Llama (RoPE, grouped-query attention), and for SmolLM2's real weights."""

import numpy as np
import pytest

import tinyllm as tl
from tinyllm.errors import ShapeError
from tinyllm.models import GPT, GPTConfig
from tinyllm.models.generation import generate
from tinyllm.models.llama import Llama, LlamaConfig
from tinyllm.nn.attention import KVCache

PROMPTS = [[3, 1, 4, 1, 5, 9, 2], [6, 5], [3, 5, 8, 9, 7]]


def gpt(positional: str = "learned") -> GPT:
    tl.manual_seed(11)
    return GPT(GPTConfig(vocab_size=31, block_size=24, n_layer=2, n_head=2, n_embd=16, positional=positional))


def llama() -> Llama:
    tl.manual_seed(12)
    model = Llama(LlamaConfig(vocab_size=31, block_size=24, n_layer=2, n_embd=24, n_head=6, n_kv_head=2, ffn_dim=40))
    for param in model.parameters():  # random weights of the scale of trained ones, not zeros
        param.array = param._backend.from_host(
            np.random.default_rng(3).normal(size=param.shape).astype("float32") * 0.3
        )
    return model


MODELS = {"gpt-learned": lambda: gpt("learned"), "gpt-sinusoidal": lambda: gpt("sinusoidal"), "llama": llama}


def logits_alone(model, prompt: list[int], steps: list[int]) -> list[np.ndarray]:
    """Return the last-position logits (V,) after the prompt and after each step token, one row, no padding."""
    cache = model.new_cache(1)
    out = [model(np.array([prompt]), cache=cache).numpy()[0, -1]]
    for token in steps:
        out.append(model(np.array([[token]]), cache=cache).numpy()[0, -1])
    return out


def logits_padded(model, prompts, steps, pad_id: int = 0) -> list[np.ndarray]:
    """The same for all prompts at once, left-padded with pad_id: a list of (B, V)."""
    longest = max(map(len, prompts))
    padding = np.array([longest - len(p) for p in prompts])
    batch = np.array([[pad_id] * pad + p for pad, p in zip(padding, prompts)])  # (B, T)
    cache = model.new_cache(len(prompts))
    cache.set_padding(padding)
    out = [model(batch, cache=cache).numpy()[:, -1]]
    for token in steps:
        out.append(model(np.full((len(prompts), 1), token), cache=cache).numpy()[:, -1])
    return out


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_padded_row_has_the_logits_it_has_alone(name):
    model = MODELS[name]().eval()
    steps = [2, 7, 7, 1]
    with tl.no_grad():
        together = logits_padded(model, PROMPTS, steps)
        for row, prompt in enumerate(PROMPTS):
            alone = logits_alone(model, prompt, steps)
            for step, expected in enumerate(alone):
                np.testing.assert_allclose(together[step][row], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_what_the_padding_holds_changes_nothing(name):
    model = MODELS[name]().eval()
    with tl.no_grad():
        zeros = logits_padded(model, PROMPTS, [4, 4], pad_id=0)
        others = logits_padded(model, PROMPTS, [4, 4], pad_id=30)
    for a, b in zip(zeros, others):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_greedy_generation_of_different_lengths_is_one_batch_with_each_rows_tokens(name, monkeypatch):
    model = MODELS[name]()
    alone = [generate(model, [p], 8, temperature=0, stop=())[0] for p in PROMPTS]
    caches = []
    new_cache = model.new_cache
    monkeypatch.setattr(model, "new_cache", lambda batch_size=None: caches.append(batch_size) or new_cache(batch_size))
    together = generate(model, PROMPTS, 8, temperature=0, stop=(), num_return_sequences=2)
    assert caches == [2 * len(PROMPTS)]  # one cache, one batch of every row
    assert together == [sequence for sequence in alone for _ in range(2)]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_padded_generation_runs_on_the_strict_array_api_backend(name):
    model = MODELS[name]()
    on_cpu = generate(model, PROMPTS, 5, temperature=0, stop=())
    model.to("strict")
    assert generate(model, PROMPTS, 5, temperature=0, stop=()) == on_cpu


def test_repetition_penalty_does_not_see_the_padding():
    model = gpt()
    options = dict(temperature=0, stop=(), repetition_penalty=1.8)
    alone = [generate(model, [p], 8, **options)[0] for p in PROMPTS]
    assert generate(model, PROMPTS, 8, **options) == alone


def test_a_context_that_would_fill_up_still_gives_each_row_its_tokens():
    model = gpt()  # block_size 24: 7 + 20 - 1 > 24, so the rows run per length
    alone = [generate(model, [p], 20, temperature=0, stop=())[0] for p in PROMPTS]
    assert generate(model, PROMPTS, 20, temperature=0, stop=()) == alone


def test_padding_must_be_lengths_per_row():
    with pytest.raises(ShapeError, match="padding"):
        KVCache(2).set_padding([[1, 2]])
    with pytest.raises(ShapeError, match="padding"):
        KVCache(2).set_padding([-1, 0])


@pytest.fixture(scope="module")
def smollm2():
    from tinyllm.cli.chat import load_pretrained

    return load_pretrained("smollm2")


def test_smollm2_rows_of_different_lengths_match_their_unpadded_runs(smollm2):
    model, tokenizer = smollm2
    prompts = [tokenizer.encode("The capital of France is"), tokenizer.encode("One, two, three, four, five, six,")]
    assert len(prompts[0]) != len(prompts[1])
    alone = [generate(model, [p], 8, temperature=0, stop=())[0] for p in prompts]
    assert generate(model, prompts, 8, temperature=0, stop=()) == alone
    steps = [int(alone[0][len(prompts[0])])]
    with tl.no_grad():
        together = logits_padded(model, prompts, steps)
        for row, prompt in enumerate(prompts):
            for step, expected in enumerate(logits_alone(model, prompt, steps)):
                np.testing.assert_allclose(together[step][row], expected, rtol=1e-4, atol=1e-4)
