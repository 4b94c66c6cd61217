"""Optimizers against torch.optim, the LR schedule, gradient clipping, weight-decay groups, state dicts."""

import math

import numpy as np
import pytest
import torch

import tinyllm as tl
from tinyllm import nn
from tinyllm.errors import CheckpointError
from tinyllm.models import GPT, GPTConfig
from tinyllm.optim import SGD, AdamW, WarmupCosine, clip_grad_norm, set_lr, weight_decay_groups

SHAPES = [(5, 3), (3,), (2, 4, 2)]


def make_pair(seed=0):
    """Return tinyllm parameters and torch parameters holding the same values."""
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal(shape).astype(np.float32) for shape in SHAPES]
    ours = [nn.Parameter(tl.tensor(v)) for v in values]
    theirs = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in values]
    return ours, theirs


def run_steps(ours, theirs, opt, topt, steps, seed=1, lrs=None):
    rng = np.random.default_rng(seed)
    for step in range(steps):
        if lrs is not None:
            set_lr(opt, lrs[step])
            for group in topt.param_groups:
                group["lr"] = lrs[step]
        for p, tp in zip(ours, theirs):
            g = rng.standard_normal(p.shape).astype(np.float32)
            p.grad = tl.tensor(g)
            tp.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()


def assert_same(ours, theirs, atol=1e-6):
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-5, atol=atol)


def test_adamw_matches_torch_with_groups_and_a_changing_lr():
    ours, theirs = make_pair()
    opt = AdamW(
        [{"params": ours[:2], "weight_decay": 0.1}, {"params": ours[2:], "weight_decay": 0.0}], betas=(0.9, 0.99)
    )
    topt = torch.optim.AdamW(
        [{"params": theirs[:2], "weight_decay": 0.1}, {"params": theirs[2:], "weight_decay": 0.0}], betas=(0.9, 0.99)
    )
    lrs = [WarmupCosine(1e-2, 3, 20, 1e-3)(s) for s in range(20)]
    run_steps(ours, theirs, opt, topt, 20, lrs=lrs)
    assert_same(ours, theirs)


def test_adamw_keeps_its_own_betas_when_given_a_list_the_caller_changes_later():
    ours, theirs = make_pair()
    betas = [0.9, 0.99]
    opt = AdamW(ours, lr=1e-2, betas=betas)
    betas[0] = 0.0  # after construction: must not reach the optimizer
    topt = torch.optim.AdamW(theirs, lr=1e-2, betas=(0.9, 0.99))
    run_steps(ours, theirs, opt, topt, 5)
    assert_same(ours, theirs)
    assert opt.param_groups[0]["betas"] == (0.9, 0.99)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_with_momentum_matches_torch(nesterov):
    ours, theirs = make_pair()
    opt = SGD(ours, lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=nesterov)
    topt = torch.optim.SGD(theirs, lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=nesterov)
    run_steps(ours, theirs, opt, topt, 10)
    assert_same(ours, theirs)


def test_plain_sgd_takes_a_gradient_step():
    p = nn.Parameter(tl.tensor([1.0, -2.0]))
    p.grad = tl.tensor([0.5, 0.5])
    SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.numpy(), [0.95, -2.05], rtol=1e-6)


def test_parameters_without_gradient_are_left_alone():
    p, q = nn.Parameter(tl.tensor([1.0])), nn.Parameter(tl.tensor([2.0]))
    q.grad = tl.tensor([1.0])
    AdamW([p, q], lr=0.1).step()
    assert p.numpy().tolist() == [1.0] and q.numpy()[0] < 2.0


@pytest.mark.parametrize("kind", ["adamw", "sgd"])
def test_state_dict_restores_the_optimizer_exactly(kind):
    make = (lambda ps: AdamW(ps, lr=1e-2)) if kind == "adamw" else (lambda ps: SGD(ps, lr=1e-2, momentum=0.9))
    ours, _ = make_pair()
    opt = make(ours)
    rng = np.random.default_rng(5)
    grads = [[rng.standard_normal(s).astype(np.float32) for s in SHAPES] for _ in range(5)]

    def step(params, optimizer, g):
        for p, gi in zip(params, g):
            p.grad = tl.tensor(gi)
        optimizer.step()

    for g in grads[:3]:
        step(ours, opt, g)
    state = opt.state_dict()
    copies = [nn.Parameter(tl.tensor(p.numpy().copy())) for p in ours]
    restored = make(copies)
    restored.load_state_dict(state)
    for g in grads[3:]:
        step(ours, opt, g)
        step(copies, restored, g)
    for p, q in zip(ours, copies):
        assert np.array_equal(p.numpy(), q.numpy())
    if kind == "adamw":
        assert restored.state[0]["step"] == 5


def test_state_dict_of_another_model_is_a_checkpoint_error():
    ours, _ = make_pair()
    opt = AdamW(ours)
    for p in ours:
        p.grad = tl.ones(*p.shape)
    opt.step()
    state = opt.state_dict()
    with pytest.raises(CheckpointError, match="sizes"):
        AdamW(ours[:2]).load_state_dict(state)
    other = [nn.Parameter(tl.zeros(9, 9)), ours[1], ours[2]]
    with pytest.raises(CheckpointError, match=r"shape \(5, 3\), the parameter has \(9, 9\)"):
        AdamW(other).load_state_dict(state)


def test_warmup_cosine_matches_nanogpts_formula():
    schedule = WarmupCosine(max_lr=1e-3, warmup_iters=100, decay_iters=2000, min_lr=1e-4)
    assert schedule(0) == pytest.approx(1e-3 / 101)
    assert schedule(99) == pytest.approx(1e-3 * 100 / 101)
    assert schedule(100) == pytest.approx(1e-3)
    assert schedule(1050) == pytest.approx(1e-4 + 0.5 * (1e-3 - 1e-4))
    assert schedule(2000) == schedule(5000) == 1e-4
    values = [schedule(s) for s in range(100, 2001)]
    assert all(a >= b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(max_norm):
    ours, theirs = make_pair()
    rng = np.random.default_rng(2)
    for p, tp in zip(ours, theirs):
        g = rng.standard_normal(p.shape).astype(np.float32)
        p.grad, tp.grad = tl.tensor(g), torch.from_numpy(g.copy())
    norm = clip_grad_norm(ours, max_norm)
    tnorm = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    assert norm == pytest.approx(float(tnorm), rel=1e-5)
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-5, atol=1e-7)
    clipped = math.sqrt(sum(float((p.grad.numpy() ** 2).sum()) for p in ours))
    assert clipped == pytest.approx(min(norm, max_norm), rel=1e-5)


def test_weight_decay_groups_spare_biases_norms_and_embeddings():
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
    decay, no_decay = weight_decay_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert set(decay["names"]) == {
        "h.0.attn.c_attn.weight",
        "h.0.attn.c_proj.weight",
        "h.0.mlp.c_fc.weight",
        "h.0.mlp.c_proj.weight",
    }
    assert {"wte.weight", "wpe.weight", "h.0.ln_1.weight", "h.0.attn.c_attn.bias", "ln_f.bias"} <= set(
        no_decay["names"]
    )
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_weight_decay_groups_agree_with_the_torch_twins_rule():
    from torch_gpt import TorchGPT, is_no_decay

    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8))
    twin = TorchGPT.from_tinyllm(model)
    _, no_decay = weight_decay_groups(model, 0.1)
    assert set(no_decay["names"]) == {n for n, p in twin.named_parameters() if is_no_decay(n, p)}
