"""Plain PyTorch programs run unchanged on tinyllm: each program in tests/torch_programs/ is
executed twice, once with the real torch and once with `torch` (and every `torch.*` module)
resolving to tinyllm, from the same initial weights (torch's initial state_dict loaded into the
tinyllm model); the losses of 10 training steps agree to 1e-5 relative.
"""

import builtins
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

PROGRAMS = Path(__file__).parent / "torch_programs"
STEPS = 10
pytestmark = pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")


def _tinyllm_import(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002 - __import__'s names
    """Import `torch...` as `tinyllm...`; every other module as usual."""
    if level == 0 and (name == "torch" or name.startswith("torch.")):
        name = "tinyllm" + name[len("torch") :]
    return builtins.__import__(name, globals, locals, fromlist, level)


def load_program(name: str, engine: str) -> SimpleNamespace:
    """Return the namespace of tests/torch_programs/<name>.py executed on torch or on tinyllm."""
    path = PROGRAMS / f"{name}.py"
    namespace = {"__name__": f"torch_programs.{name}.{engine}", "__file__": str(path)}
    if engine == "tinyllm":
        namespace["__builtins__"] = {**vars(builtins), "__import__": _tinyllm_import}
    exec(compile(path.read_text(), str(path), "exec"), namespace)  # noqa: S102 - the program under test
    return SimpleNamespace(**namespace)


def initial_state(model) -> dict:
    """Return torch's state dict as NumPy arrays (tied weights appear under both names)."""
    return {name: value.detach().numpy().copy() for name, value in model.state_dict().items()}


@pytest.fixture(scope="module", autouse=True)
def torch_on_one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def programs():
    return {
        name: (load_program(name, "torch"), load_program(name, "tinyllm"))
        for name in ("transformer_lm", "nanogpt", "mlp_classifier")
    }


def test_the_tinyllm_run_really_uses_tinyllm(programs):
    on_torch, on_tinyllm = programs["mlp_classifier"]
    assert on_torch.torch is torch
    assert on_tinyllm.torch.__name__ == "tinyllm"
    assert on_tinyllm.nn.__name__ == "tinyllm.nn"
    assert on_tinyllm.DataLoader.__module__ == "tinyllm.utils.data"
    assert programs["nanogpt"][1].F.__name__ == "tinyllm.nn.functional"


def test_transformer_language_model_trains_as_on_torch(programs):
    on_torch, on_tinyllm = programs["transformer_lm"]
    ntokens = 40
    cycle = np.random.default_rng(0).permutation(ntokens)  # a learnable text: one sequence repeated
    token_ids = np.resize(cycle, 4 * (8 * STEPS + 1)).tolist()
    torch.manual_seed(0)
    reference = on_torch.build(ntokens)
    model = on_tinyllm.build(ntokens)
    model.load_state_dict(initial_state(reference))
    assert "pos_encoder.pe" in model.state_dict()  # the buffer travels with the weights
    expected = on_torch.train(reference, token_ids, ntokens, STEPS)
    losses = on_tinyllm.train(model, token_ids, ntokens, STEPS)
    assert len(expected) == STEPS
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    assert expected[-1] < expected[0]


def test_nanogpt_trains_and_generates_as_on_torch(programs):
    on_torch, on_tinyllm = programs["nanogpt"]
    rng = np.random.default_rng(1)
    token_ids = rng.integers(0, 50, size=400).tolist()
    offsets = rng.integers(0, 400 - 17, size=(STEPS, 4)).tolist()
    torch.manual_seed(0)
    reference = on_torch.build()
    model = on_tinyllm.build()
    assert model.transformer.wte.weight is model.lm_head.weight
    assert model.get_num_params() == reference.get_num_params()  # the tied table counted once
    model.load_state_dict(initial_state(reference))
    expected = on_torch.train(reference, token_ids, offsets)
    losses = on_tinyllm.train(model, token_ids, offsets)
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    assert expected[-1] < expected[0]
    prompt = token_ids[:5]
    assert on_tinyllm.sample(model, prompt, 8) == on_torch.sample(reference, prompt, 8)


def test_mlp_classifier_trains_as_on_torch(programs):
    on_torch, on_tinyllm = programs["mlp_classifier"]
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, size=32)
    centers = rng.standard_normal((3, 6)) * 2.0
    features = (centers[labels] + rng.standard_normal((32, 6))).astype(np.float32)
    torch.manual_seed(0)
    reference = on_torch.build(6, 16, 3)
    model = on_tinyllm.build(6, 16, 3)
    model.load_state_dict(initial_state(reference))
    expected = on_torch.train(reference, features, labels.tolist())
    losses = on_tinyllm.train(model, features, labels.tolist())
    assert len(expected) == STEPS
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    assert expected[-1] < expected[0]
    accuracy = on_tinyllm.accuracy(model, features, labels.tolist())
    assert accuracy == pytest.approx(on_torch.accuracy(reference, features, labels.tolist()))
