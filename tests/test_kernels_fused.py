"""The fused Numba kernels for cross-entropy and AdamW against their references
(kernels/cross_entropy_reference.py, kernels/adamw_reference.py), and AdamW's fused path against
its plain array code."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyllm as tl
import tinyllm.nn.functional as F
from tinyllm import kernels
from tinyllm.errors import DeviceError
from tinyllm.kernels import adamw_cpu, adamw_reference, cross_entropy_cpu, cross_entropy_reference
from tinyllm.optim import AdamW

TOLERANCE = {"float32": 2e-5, "float64": 1e-12}


@st.composite
def logits_and_targets(draw):
    dtype = draw(st.sampled_from(["float32", "float64"]))
    rows, classes = draw(st.integers(1, 40)), draw(st.integers(1, 70))
    logits = draw(hnp.arrays(dtype, (rows, classes), elements=st.floats(-30, 30, width=32)))
    targets = draw(hnp.arrays(np.int64, (rows,), elements=st.integers(0, classes - 1)))
    ignored = draw(hnp.arrays(np.bool_, (rows,)))
    return logits, np.where(ignored, -100, targets)


def loss_and_gradient(logits, targets, kernel: str):
    x = tl.tensor(logits, requires_grad=True)
    with kernels.use(cross_entropy=kernel):
        loss = F.cross_entropy(x, tl.tensor(targets))
    (loss * 3.0).backward()
    return loss.numpy(), x.grad.numpy()


@given(case=logits_and_targets())
def test_cross_entropy_kernel_matches_the_reference(case):
    logits, targets = case
    loss, grad = loss_and_gradient(logits, targets, "numba")
    want_loss, want_grad = loss_and_gradient(logits, targets, "reference")
    tolerance = TOLERANCE[logits.dtype.name]
    assert loss.dtype == want_loss.dtype == logits.dtype
    np.testing.assert_allclose(loss, want_loss, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(grad, want_grad, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("split", [False, True], ids=["calling thread", "rows over threads"])
@given(case=logits_and_targets())
def test_cross_entropy_kernel_matches_the_reference_in_tasks_of_a_few_rows(split, case):
    """As in the one pool of a tuned process, where the rows are split in tasks (here of 1 to 3
    rows, the last one short); a row of -inf logits has a NaN loss and NaN gradients."""
    logits, targets = case
    if logits.shape[0] > 1:
        logits[-1] = -np.inf
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cross_entropy_cpu.runtime, "blas_on_numba_threads", lambda: split)
        patch.setattr(cross_entropy_cpu, "PARALLEL_WORK", 0)
        patch.setattr(cross_entropy_cpu, "CHUNK", 3 * logits.shape[1] - 1)
        loss, grad = loss_and_gradient(logits, targets, "numba")
    want_loss, want_grad = loss_and_gradient(logits, targets, "reference")
    tolerance = TOLERANCE[logits.dtype.name]
    np.testing.assert_allclose(loss, want_loss, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(grad, want_grad, rtol=tolerance, atol=tolerance)


def test_cross_entropy_kernel_with_every_row_ignored_gives_zero_loss_and_gradient():
    logits = np.ones((3, 4), np.float32)
    loss, grad = loss_and_gradient(logits, np.full(3, -100), "numba")
    assert loss == 0.0
    assert not grad.any()


def test_cross_entropy_kernel_takes_a_minus_infinity_logit_of_another_class():
    logits = np.array([[0.0, -np.inf, 1.0]], np.float32)
    loss, grad = loss_and_gradient(logits, np.array([2]), "numba")
    want = np.log1p(np.exp(-1.0))  # -log(e / (1 + e))
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    assert grad[0, 1] == 0.0


def test_cross_entropy_picks_the_kernel_by_device_and_dtype():
    assert kernels.choose("cross_entropy", np.zeros((2, 3), np.float32)) is cross_entropy_cpu
    assert kernels.choose("cross_entropy", np.zeros((2, 3), np.float16)) is cross_entropy_reference


@st.composite
def adamw_cases(draw):
    dtype = draw(st.sampled_from(["float32", "float64"]))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=9))
    floats = st.floats(-2, 2, width=32)
    param, grad, exp_avg = (draw(hnp.arrays(dtype, shape, elements=floats)) for _ in range(3))
    exp_avg_sq = draw(hnp.arrays(dtype, shape, elements=st.floats(0, 2, width=32)))
    step = draw(st.integers(1, 1000))
    weight_decay = draw(st.sampled_from([0.0, 0.1]))
    return [param, grad, exp_avg, exp_avg_sq], step, weight_decay


@pytest.mark.parametrize("split", [False, True], ids=["calling thread", "chunks over threads"])
@given(case=adamw_cases())
def test_adamw_kernel_matches_the_reference(split, case):
    arrays, step, weight_decay = case
    fused, plain = [a.copy() for a in arrays], [a.copy() for a in arrays]
    saved_parallel = adamw_cpu._parallel
    adamw_cpu._parallel = lambda size: split  # as in the one pool, where big parameters are split
    try:
        adamw_cpu.update(*fused, step, 1e-3, 0.9, 0.99, 1e-8, weight_decay)
    finally:
        adamw_cpu._parallel = saved_parallel
    adamw_reference.update(*plain, step, 1e-3, 0.9, 0.99, 1e-8, weight_decay)
    tolerance = TOLERANCE[arrays[0].dtype.name]
    for got, want in zip(fused, plain):
        np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance)


def test_adamw_kernel_in_chunks_over_threads_matches_the_reference(monkeypatch):
    monkeypatch.setattr(adamw_cpu, "_parallel", lambda size: True)
    rng = np.random.default_rng(0)
    size = 2 * adamw_cpu.CHUNK + 123  # three chunks, the last one short
    arrays = [rng.standard_normal(size).astype(np.float32) for _ in range(3)] + [rng.random(size).astype(np.float32)]
    fused, plain = [a.copy() for a in arrays], [a.copy() for a in arrays]
    adamw_cpu.update(*fused, 7, 1e-3, 0.9, 0.99, 1e-8, 0.1)
    adamw_reference.update(*plain, 7, 1e-3, 0.9, 0.99, 1e-8, 0.1)
    for got, want in zip(fused, plain):
        np.testing.assert_allclose(got, want, rtol=TOLERANCE["float32"], atol=TOLERANCE["float32"])


def test_adamw_kernel_refuses_arrays_it_cannot_update_in_place():
    param = np.zeros((4, 3), np.float32).T
    with pytest.raises(DeviceError, match="C-contiguous"):
        adamw_cpu.update(param, param, param, param, 1, 1e-3, 0.9, 0.99, 1e-8, 0.0)
    assert kernels.choose("adamw", param, param, param, param) is adamw_reference


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_adamw_gives_the_plain_adamw_parameters(dtype):
    rng = np.random.default_rng(0)
    start = [rng.standard_normal(shape).astype(dtype) for shape in [(5, 3), (3,), (2, 4, 2)]]
    grads = [[rng.standard_normal(a.shape).astype(dtype) for a in start] for _ in range(10)]
    results = {}
    for fused in (True, False):
        params = [tl.tensor(a, requires_grad=True) for a in start]
        optimizer = AdamW(params, lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1, fused=fused)
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad = tl.tensor(g)
            optimizer.step()
        results[fused] = [p.numpy() for p in params]
    for got, want, before in zip(results[True], results[False], start):
        np.testing.assert_allclose(got, want, rtol=TOLERANCE[dtype] * 10, atol=TOLERANCE[dtype] * 10)
        assert np.abs(got - before).max() > 1e-3  # ten steps of lr 1e-2 moved every parameter


def test_fused_adamw_leaves_the_callers_array_alone():
    array = np.ones(3, np.float32)
    param = tl.tensor(array, requires_grad=True)
    param.grad = tl.tensor(np.ones(3, np.float32))
    AdamW([param], lr=0.1).step()
    assert (array == 1).all()
    assert (param.numpy() < 1).all()
    # a parameter that shares the caller's memory (from_numpy, and a tensor detached from it):
    # the in-place kernel writes into an array of the parameter's own, as the array code would
    shared = np.ones(3, np.float32)
    param = tl.from_numpy(shared).requires_grad_()
    detached = param.detach()
    assert np.shares_memory(param.array, shared) and np.shares_memory(detached.array, shared)
    param.grad = tl.tensor(np.ones(3, np.float32))
    AdamW([param], lr=0.1).step()
    assert (shared == 1).all() and (detached.numpy() == 1).all()
    assert (param.numpy() < 1).all()


def adamw_run(start, grads, flat: bool, monkeypatch, state=None):
    """Run AdamW (two groups) over `grads` from `start`; return the parameters and the optimizer.
    flat=False keeps every update per parameter, as a group that cannot be laid out flat."""
    with monkeypatch.context() as patch:
        if not flat:
            patch.setattr(AdamW, "_update_group", lambda self, group, first: False)
        params = [tl.tensor(a, requires_grad=True) for a in start]
        groups = [{"params": params[:3], "weight_decay": 0.1}, {"params": params[3:], "weight_decay": 0.0}]
        optimizer = AdamW(groups, lr=1e-2, betas=(0.9, 0.99))
        if state is not None:
            optimizer.load_state_dict(state)
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad = None if g is None else tl.tensor(g)
            optimizer.step()
    return params, optimizer


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adamw_updates_a_group_in_one_call_to_the_numbers_of_one_by_one(dtype, monkeypatch):
    rng = np.random.default_rng(1)
    shapes = [(5, 3), (3,), (2, 4, 2), (2 * adamw_cpu.CHUNK + 7,), (1,)]
    start = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    callers = [a.copy() for a in start]
    grads = [[rng.standard_normal(a.shape).astype(dtype) for a in start] for _ in range(4)]
    flat, _ = adamw_run(start, grads, True, monkeypatch)
    one_by_one, _ = adamw_run(start, grads, False, monkeypatch)
    owner = flat[0].array.base
    assert owner is not None and flat[2].array.base is owner  # the group was laid out flat
    for got, want in zip(flat, one_by_one):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    for array, caller in zip(start, callers):
        np.testing.assert_array_equal(array, caller)  # the caller's arrays were copied, not written


def test_adamw_lays_a_group_out_again_after_its_arrays_are_replaced(monkeypatch):
    rng = np.random.default_rng(2)
    start = [rng.standard_normal(shape).astype(np.float32) for shape in [(4, 3), (3,), (6,), (2, 2), (5,)]]
    grads = [[rng.standard_normal(a.shape).astype(np.float32) for a in start] for _ in range(3)]
    _, other = adamw_run(start, grads, False, monkeypatch)  # moments that differ from zero
    new_values = [rng.standard_normal(a.shape).astype(np.float32) for a in start]
    params, optimizer = adamw_run(start, grads[:1], True, monkeypatch)  # laid out flat, one step
    optimizer.load_state_dict(other.state_dict())  # new moment arrays and step counts
    for p, value in zip(params, new_values):
        p.array = value.copy()  # as a model's load_state_dict would
    for p, g in zip(params, grads[0]):
        p.grad = tl.tensor(g)
    optimizer.step()
    want, _ = adamw_run(new_values, grads[:1], False, monkeypatch, state=other.state_dict())
    for got, expected in zip(params, want):
        np.testing.assert_array_equal(got.numpy(), expected.numpy())


def test_adamw_updates_one_by_one_a_group_with_a_parameter_without_gradient(monkeypatch):
    rng = np.random.default_rng(3)
    start = [rng.standard_normal(shape).astype(np.float32) for shape in [(4, 3), (3,), (6,), (2, 2), (5,)]]
    grads = [[rng.standard_normal(a.shape).astype(np.float32) for a in start] for _ in range(3)]
    grads[1][1] = None  # the second parameter skips the second step; its step count falls behind
    flat, optimizer = adamw_run(start, grads, True, monkeypatch)
    one_by_one, _ = adamw_run(start, grads, False, monkeypatch)
    for got, want in zip(flat, one_by_one):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert optimizer.state[1]["step"] == 2 and optimizer.state[0]["step"] == 3


def test_adamw_kernel_gives_nan_for_a_zero_divisor_as_pytorch_does():
    # eps = 0 and a gradient of 0: m / (sqrt(v) + eps) is 0 / 0, NaN in PyTorch's AdamW
    arrays = [np.zeros(5, np.float32) for _ in range(4)]
    adamw_cpu.update(*arrays, 1, 1e-3, 0.9, 0.99, 0.0, 0.0)
    assert np.isnan(arrays[0]).all()


@pytest.mark.parametrize(("dtype", "tolerance"), [("float32", 3e-7), ("float64", 2e-14)])
def test_vector_exp_is_exp_within_its_documented_accuracy(dtype, tolerance):
    """The polynomial exp of the fused attention and cross-entropy, shorter in float32 than in
    float64, against exp in float64 of the very differences it exponentiates: the whole range
    a softmax sees (down to the underflow cut, where it gives 0), and -inf (a masked score)."""
    from tinyllm.kernels.vector_exp import constants, exp_rows, int_like

    rng = np.random.default_rng(0)
    s = np.concatenate([rng.uniform(-90, 0, (8, 200)), rng.uniform(-1, 0, (8, 200))]).astype(dtype)
    s[0, :3] = (-np.inf, 0.0, -87.5)
    shift = rng.uniform(-2, 2, 16).astype(dtype)
    x = (s - shift[:, None]).astype(np.float64)  # the differences, rounded as the kernel rounds them
    powers = np.empty(s.shape[1], dtype=dtype)
    exp_rows(s, shift, constants(dtype), powers.view(int_like(dtype).dtype), powers)
    want = np.where(x >= -87.0, np.exp(x), 0.0)
    live = want > 0
    assert np.all(s[~live] == 0)
    assert np.max(np.abs(s[live] - want[live]) / want[live]) < tolerance
