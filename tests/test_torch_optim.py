"""tinyllm.optim against torch.optim: SGD, Adam and AdamW with PyTorch's signatures and param
groups, the lr_scheduler classes, state dicts of both, and hyper-parameter validation."""

import warnings

import numpy as np
import pytest
import torch

import tinyllm as tl
import tinyllm.nn as nn
import tinyllm.optim as optim
from tinyllm.errors import ArgumentError, UnsupportedError

SHAPES = [(4, 3), (3,), (2, 2, 2)]


def make_pair(seed=0):
    """Return tinyllm and torch parameters holding the same values."""
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal(shape).astype(np.float32) for shape in SHAPES]
    return [nn.Parameter(tl.tensor(v)) for v in values], [torch.nn.Parameter(torch.tensor(v)) for v in values]


def groups_of(params, split_options):
    if split_options is None:
        return params
    return [{"params": params[:2]}, {"params": params[2:], **split_options}]


def run_steps(ours, theirs, opt, topt, steps=10, seed=1):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        for p, tp in zip(ours, theirs):
            g = rng.standard_normal(p.shape).astype(np.float32)
            p.grad, tp.grad = tl.tensor(g), torch.tensor(g)
        opt.step()
        topt.step()
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-5, atol=1e-6)


OPTIMIZERS = [
    ("SGD", {"lr": 0.1}, None),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}, {"lr": 0.2}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "maximize": True}, None),
    ("Adam", {}, None),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1, "amsgrad": True}, {"weight_decay": 0.0}),
    ("Adam", {"lr": 0.01, "maximize": True, "foreach": False}, None),
    ("AdamW", {"lr": 0.01}, {"weight_decay": 0.0, "lr": 0.03}),
    ("AdamW", {"lr": 0.01, "amsgrad": True, "eps": 1e-6}, None),
]


@pytest.mark.parametrize("name, options, second_group", OPTIMIZERS)
def test_optimizer_matches_torch(name, options, second_group):
    ours, theirs = make_pair()
    opt = getattr(optim, name)(groups_of(ours, second_group), **options)
    topt = getattr(torch.optim, name)(groups_of(theirs, second_group), **options)
    run_steps(ours, theirs, opt, topt)


def test_adam_state_dict_resumes_the_same_trajectory():
    ours, theirs = make_pair()
    opt, topt = optim.Adam(ours, lr=0.01), torch.optim.Adam(theirs, lr=0.01)
    run_steps(ours, theirs, opt, topt, steps=3)
    resumed = optim.Adam(ours, lr=0.5)
    resumed.load_state_dict(opt.state_dict())
    assert resumed.param_groups[0]["lr"] == 0.01
    run_steps(ours, theirs, resumed, topt, steps=3, seed=2)


def test_step_with_closure_returns_its_loss_and_zero_grad_keeps_zeros():
    p = nn.Parameter(tl.tensor([1.0, 2.0]))
    opt = optim.SGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == pytest.approx(5.0)
    np.testing.assert_allclose(p.numpy(), [0.8, 1.6], rtol=1e-6)
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad.numpy(), [0.0, 0.0])


def test_add_param_group_fills_defaults_and_rejects_a_repeated_parameter():
    a, b = nn.Parameter(tl.ones(2)), nn.Parameter(tl.ones(3))
    opt = optim.AdamW([a], lr=0.1)
    opt.add_param_group({"params": [b], "weight_decay": 0.0})
    assert opt.param_groups[1]["lr"] == 0.1 and opt.param_groups[1]["weight_decay"] == 0.0
    with pytest.raises(ArgumentError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ArgumentError, match="single Tensor"):
        optim.SGD(a, lr=0.1)


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda ps: optim.SGD(ps, lr=-1.0), "lr"),
        (lambda ps: optim.SGD(ps, lr=0.1, momentum=-0.5), "momentum"),
        (lambda ps: optim.SGD(ps, lr=0.1, nesterov=True), "nesterov"),
        (lambda ps: optim.SGD([{"params": ps, "lr": -0.1}], lr=0.1), "lr"),
        (lambda ps: optim.Adam(ps, betas=(1.5, 0.999)), "beta1"),
        (lambda ps: optim.Adam(ps, betas=(0.9, 1.0)), "beta2"),
        (lambda ps: optim.AdamW(ps, eps=-1e-8), "eps"),
        (lambda ps: optim.AdamW(ps, weight_decay=-0.1), "weight_decay"),
        (lambda ps: optim.lr_scheduler.StepLR(optim.SGD(ps, lr=0.1), step_size=0), "step_size"),
        (lambda ps: optim.lr_scheduler.CosineAnnealingLR(optim.SGD(ps, lr=0.1), T_max=0), "T_max"),
        (lambda ps: optim.lr_scheduler.LinearLR(optim.SGD(ps, lr=0.1), start_factor=0.0), "start_factor"),
    ],
)
def test_bad_hyper_parameters_raise_argument_error_naming_them(make, name):
    with pytest.raises(ArgumentError, match=name):
        make([nn.Parameter(tl.ones(2))])


def test_capturable_is_unsupported_and_named():
    with pytest.raises(UnsupportedError, match="capturable"):
        optim.Adam([nn.Parameter(tl.ones(2))], capturable=True)


# -- schedulers -----------------------------------------------------------------------------------
def _schedulers(lib, opt):
    schedule = lib.optim.lr_scheduler
    return {
        "lambda": lambda: schedule.LambdaLR(opt, lambda epoch: 0.9**epoch),
        "step": lambda: schedule.StepLR(opt, step_size=3, gamma=0.5),
        "cosine": lambda: schedule.CosineAnnealingLR(opt, T_max=5, eta_min=0.01),
        "linear": lambda: schedule.LinearLR(opt, start_factor=0.25, total_iters=4),
        "sequential": lambda: schedule.SequentialLR(
            opt,
            [schedule.LinearLR(opt, start_factor=0.1, total_iters=3), schedule.CosineAnnealingLR(opt, T_max=6)],
            milestones=[3],
        ),
    }


@pytest.mark.parametrize("kind", ["lambda", "step", "cosine", "linear", "sequential"])
def test_scheduler_learning_rates_match_torch(kind):
    ours, theirs = make_pair()
    opt = optim.SGD(groups_of(ours, {"lr": 0.3}), lr=0.1)
    topt = torch.optim.SGD(groups_of(theirs, {"lr": 0.3}), lr=0.1)
    scheduler, torch_scheduler = _schedulers(tl, opt)[kind](), _schedulers(torch, topt)[kind]()
    for _ in range(14):
        assert scheduler.get_last_lr() == pytest.approx(torch_scheduler.get_last_lr(), rel=1e-12)
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([g["lr"] for g in topt.param_groups], rel=1e-12)
        opt.step()
        topt.step()
        scheduler.step()
        torch_scheduler.step()


def test_schedulers_stepped_to_an_epoch_take_the_closed_form_of_torch():
    ours, theirs = make_pair()
    opt = optim.SGD(groups_of(ours, {"lr": 0.3}), lr=0.1)
    topt = torch.optim.SGD(groups_of(theirs, {"lr": 0.3}), lr=0.1)
    for kind in ["step", "cosine", "linear"]:
        scheduler, torch_scheduler = _schedulers(tl, opt)[kind](), _schedulers(torch, topt)[kind]()
        for epoch in [3, 7, 2, 9]:
            scheduler.step(epoch)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch deprecates the epoch argument
                torch_scheduler.step(epoch)
            assert scheduler.get_last_lr() == pytest.approx(torch_scheduler.get_last_lr(), rel=1e-12), (kind, epoch)


def test_scheduler_state_dict_resumes_the_schedule():
    opt = optim.SGD([nn.Parameter(tl.ones(2))], lr=1.0)
    scheduler = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(3):
        scheduler.step()
    state = scheduler.state_dict()
    assert "optimizer" not in state
    fresh_opt = optim.SGD([nn.Parameter(tl.ones(2))], lr=1.0)
    resumed = optim.lr_scheduler.StepLR(fresh_opt, step_size=2, gamma=0.5)
    resumed.load_state_dict(state)
    fresh_opt.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    scheduler.step()
    resumed.step()
    assert resumed.get_last_lr() == scheduler.get_last_lr() == [0.25]


def test_tinyllm_names_for_the_trainer_still_work():
    p = nn.Parameter(tl.ones(3))
    p.grad = tl.tensor([3.0, 4.0, 0.0])
    assert optim.clip_grad_norm([p], 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(p.grad.numpy(), [0.6, 0.8, 0.0], rtol=1e-5)
    assert optim.WarmupCosine(1.0, 2, 10)(0) == pytest.approx(1 / 3)
