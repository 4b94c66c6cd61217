"""F.scaled_dot_product_attention: every kernel against PyTorch's SDPA, forward and gradients.

Shapes are drawn by hypothesis: T = 1, T not a multiple of the kernel block (64), Tq != Tk,
D in 8..128, causal or not, padding masks (bool or additive, per batch row, some rows with no key
at all), a dense additive bias. PyTorch gives NaN for a row with every key masked, where tinyllm
documents zeros: the oracle lets such rows see every key and zeroes their output and incoming
gradient, so that they must contribute nothing to dk and dv and get dq = 0.
"""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import tinyllm as tl
import tinyllm.nn.functional as F
from tinyllm import kernels
from tinyllm.kernels import attention_cpu, attention_reference

TOLERANCE = {"float32": 1e-4, "float64": 1e-10}
MASKS = [None, "padding-bool", "padding-additive", "dense-additive", "decode-bool"]


@dataclass
class AttentionCase:
    batch: int
    n_head: int
    t_q: int
    t_k: int
    depth: int
    causal: bool
    mask: str | None
    seed: int

    def arrays(self):
        """Return q, k, v, grad_out (float64) and the attn_mask array (or None)."""
        rng = np.random.default_rng(self.seed)
        q = rng.standard_normal((self.batch, self.n_head, self.t_q, self.depth))
        k = rng.standard_normal((self.batch, self.n_head, self.t_k, self.depth))
        v = rng.standard_normal((self.batch, self.n_head, self.t_k, self.depth))
        grad_out = rng.standard_normal(q.shape)
        lengths = rng.integers(0, self.t_k + 1, size=self.batch)  # 0: a row with no key at all
        padding = np.arange(self.t_k)[None, :] < lengths[:, None]  # (B, Tk)
        if self.mask == "padding-bool":
            mask = padding[:, None, None, :]  # (B, 1, 1, Tk)
        elif self.mask == "padding-additive":
            mask = np.where(padding, 0.0, -np.inf)[:, None, None, :]
        elif self.mask == "dense-additive":
            mask = rng.standard_normal((self.t_q, self.t_k))  # (Tq, Tk), broadcast over B, H
        elif self.mask == "decode-bool":
            mask = rng.random((self.batch, 1, self.t_q, self.t_k)) < 0.7  # (B, 1, Tq, Tk)
        else:
            mask = None
        return q, k, v, grad_out, mask


@st.composite
def attention_cases(draw):
    lengths = st.one_of(st.sampled_from([1, 63, 64, 65]), st.integers(1, 140))
    t_q = draw(lengths)
    t_k = t_q if draw(st.booleans()) else draw(lengths)
    return AttentionCase(
        batch=draw(st.integers(1, 2)),
        n_head=draw(st.integers(1, 2)),
        t_q=t_q,
        t_k=t_k,
        depth=draw(st.one_of(st.sampled_from([8, 64, 128]), st.integers(8, 128))),
        causal=draw(st.booleans()),
        mask=draw(st.sampled_from(MASKS)),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def torch_oracle(q, k, v, grad_out, mask, causal):
    """Return out, dq, dk, dv from torch SDPA in float64, masked rows made zero (tinyllm's rule)."""
    t_q, t_k = q.shape[2], k.shape[2]
    allowed = np.ones((t_q, t_k), dtype=bool)
    bias = np.zeros((t_q, t_k))
    if causal:
        allowed &= np.tril(np.ones((t_q, t_k), dtype=bool))
    if mask is not None and mask.dtype == bool:
        allowed = allowed & mask
    elif mask is not None:
        allowed = allowed & np.isfinite(mask)
        bias = bias + np.where(np.isfinite(mask), mask, 0.0)
    allowed = np.broadcast_to(allowed, q.shape[:2] + (t_q, t_k))
    dead = ~allowed.any(axis=-1)  # (B, H, Tq): rows with no key
    attend = allowed | dead[..., None]
    torch_bias = torch.tensor(np.where(attend, np.broadcast_to(bias, attend.shape), -np.inf))
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=torch_bias)
    out.backward(torch.tensor(grad_out * ~dead[..., None]))
    live = ~dead[..., None]
    return out.detach().numpy() * live, tq.grad.numpy(), tk.grad.numpy(), tv.grad.numpy()


def tinyllm_attention(case: AttentionCase, arrays, dtype: str):
    """Return out, dq, dk, dv of F.scaled_dot_product_attention (and the output tensor)."""
    q, k, v, grad_out, mask = arrays
    tq, tk, tv = (tl.tensor(a, dtype=dtype, requires_grad=True) for a in (q, k, v))
    tmask = None if mask is None else tl.tensor(mask, dtype="bool" if mask.dtype == bool else dtype)
    out = F.scaled_dot_product_attention(tq, tk, tv, attn_mask=tmask, is_causal=case.causal)
    out.backward(tl.tensor(grad_out, dtype=dtype))
    return out.numpy(), tq.grad.numpy(), tk.grad.numpy(), tv.grad.numpy()


def assert_close(actual, expected, tolerance, name):
    """Relative to the largest expected value; at least 0.1, the size of the rounding of terms of
    order one that cancel (e.g. dq of a row that sees a single key is exactly 0)."""
    scale = max(float(np.abs(expected).max()), 0.1)
    assert np.all(np.isfinite(actual)), f"{name}: not finite"
    np.testing.assert_allclose(actual, expected, rtol=tolerance, atol=tolerance * scale, err_msg=name)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kernel", ["reference", "numba"])
@given(case=attention_cases())
def test_attention_matches_torch_sdpa_forward_and_gradients(kernel, dtype, case):
    arrays = case.arrays()
    expected = torch_oracle(*arrays, case.causal)
    with kernels.use(attention=kernel):
        actual = tinyllm_attention(case, arrays, dtype)
    for name, a, e in zip(("out", "dq", "dk", "dv"), actual, expected):
        assert_close(a, e, TOLERANCE[dtype], f"{kernel} {dtype} {name}")


@given(case=attention_cases())
def test_fused_cpu_kernel_matches_reference_kernel(case):
    q, k, v, grad_out, mask = case.arrays()
    bias = None if mask is None else attention_reference.mask_to_bias(mask, q)
    results = []
    for module in (attention_reference, attention_cpu):
        out, saved = module.forward(q, k, v, bias, case.causal, 0.3)
        results.append((out, *module.backward(saved, grad_out)))
    for name, fused, reference in zip(("out", "dq", "dk", "dv"), results[1], results[0]):
        assert_close(fused, reference, 1e-10, name)


@pytest.mark.parametrize("kernel", ["reference", "numba"])
def test_rows_with_every_key_masked_give_zeros_and_zero_gradients(kernel):
    q = tl.randn(2, 2, 5, 8, dtype="float64", requires_grad=True)
    k = tl.randn(2, 2, 7, 8, dtype="float64", requires_grad=True)
    v = tl.randn(2, 2, 7, 8, dtype="float64", requires_grad=True)
    mask = np.ones((2, 1, 1, 7), dtype=bool)
    mask[1] = False  # batch row 1 has no key at all
    with kernels.use(attention=kernel):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=tl.tensor(mask))
        (out * out).sum().backward()
    assert np.all(out.numpy()[1] == 0) and np.all(np.abs(out.numpy()[0]).sum(-1) > 0)
    for t in (q, k, v):
        assert np.all(t.grad.numpy()[1] == 0) and np.all(np.isfinite(t.grad.numpy()))


def test_strict_device_runs_the_reference_and_matches_the_cpu():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 6, 8)) for _ in range(3))
    outs = []
    for device in ("cpu", "strict"):
        tq, tk, tv = (tl.tensor(a, dtype="float64", device=device, requires_grad=True) for a in (q, k, v))
        out = F.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
        out.sum().backward()
        outs.append([out.numpy(), tq.grad.numpy(), tk.grad.numpy(), tv.grad.numpy()])
    for cpu, strict in zip(*outs):
        np.testing.assert_allclose(strict, cpu, rtol=1e-12, atol=1e-12)


def test_auto_picks_the_fused_kernel_for_large_scores_and_the_reference_for_small_ones():
    small = np.zeros((1, 2, 1, 300), dtype=np.float32)  # KV-cache decoding: Tq = 1
    large = np.zeros((1, 2, 600, 8), dtype=np.float32)  # 2 * 600 * 600 scores
    preset = np.zeros((12, 4, 64, 32), dtype=np.float32)  # the GPT preset's training batch
    assert kernels.choose("attention", small, small) is attention_reference
    assert kernels.choose("attention", large, large) is attention_cpu
    assert kernels.choose("attention", preset, preset) is attention_cpu


def test_use_selects_a_kernel_and_restores_the_previous_choice():
    q = np.zeros((1, 2, 600, 8), dtype=np.float32)
    assert kernels.selected("attention") == "auto"
    with kernels.use(attention="reference"):
        assert kernels.selected("attention") == "reference"
        assert kernels.choose("attention", q, q) is attention_reference
    assert kernels.selected("attention") == "auto"
    assert kernels.choose("attention", q, q) is attention_cpu
    with pytest.raises(ValueError):
        kernels.use(attention="fastest")


def test_forced_numba_kernel_on_the_strict_device_raises_device_error():
    q = tl.randn(1, 1, 3, 4, device="strict")
    with kernels.use(attention="numba"), pytest.raises(tl.DeviceError):
        F.scaled_dot_product_attention(q, q, q)


def test_mask_that_does_not_broadcast_raises_shape_error():
    q = tl.randn(2, 2, 3, 4)
    with pytest.raises(tl.ShapeError):
        F.scaled_dot_product_attention(q, q, q, attn_mask=tl.ones(3, 2, dtype="bool"))


def _peak_extra_bytes(fn) -> int:
    """Return the peak bytes allocated while fn runs, minus the bytes of the arrays it returns."""
    tracemalloc.start()
    results = fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - sum(a.nbytes for a in results)


def test_fused_forward_backward_at_t2048_allocates_under_5_percent_of_the_scores():
    batch, n_head, t, depth = 1, 2, 2048, 64
    rng = np.random.default_rng(0)
    q, k, v, grad_out = (rng.standard_normal((batch, n_head, t, depth)).astype(np.float32) for _ in range(4))
    scores_bytes = batch * n_head * t * t * 4  # one (B, H, T, T) float32 array

    def run(module):
        def fwd_bwd():
            out, saved = module.forward(q, k, v, None, True, 0.125)
            return (out, *module.backward(saved, grad_out))

        return fwd_bwd

    run(attention_cpu)()  # compile outside the measurement
    assert _peak_extra_bytes(run(attention_cpu)) < 0.05 * scores_bytes
    assert _peak_extra_bytes(run(attention_reference)) > scores_bytes  # the measurement sees T x T


@pytest.mark.parametrize("t", [64, 100])
def test_fused_kernel_takes_q_k_v_as_strided_views_of_one_projection(t):
    """As in a Transformer block: q, k, v cut from one (B, T, 3, H, D) projection and permuted to
    (B, H, T, D), not contiguous; grad_out permuted the same way."""
    rng = np.random.default_rng(1)
    qkv = rng.standard_normal((2, t, 3, 3, 16))
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    grad_out = rng.standard_normal((2, t, 3, 16)).transpose(0, 2, 1, 3)
    assert not q.flags.c_contiguous and not grad_out.flags.c_contiguous
    results = []
    for module in (attention_reference, attention_cpu):
        out, saved = module.forward(q, k, v, None, True, 0.25)
        results.append((out, *module.backward(saved, grad_out)))
    for name, fused, reference in zip(("out", "dq", "dk", "dv"), results[1], results[0]):
        assert_close(fused, reference, 1e-10, name)


@pytest.mark.parametrize("t", [64, 100])
def test_fused_kernel_reads_the_projection_in_place_and_writes_gradients_in_its_layout(t):
    """q, k, v cut from one (B, T, 3, H, D) projection are read where they lie (no blocked copy
    kept for backward), and dq, dk, dv come back laid out as (B, T, H, D), as the projection's
    rows: putting their heads back side by side is a view."""
    rng = np.random.default_rng(5)
    qkv = rng.standard_normal((2, t, 3, 3, 16)).astype(np.float32)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    grad_out = rng.standard_normal((2, t, 3, 16)).astype(np.float32).transpose(0, 2, 1, 3)
    out, saved = attention_cpu.forward(q, k, v, None, True, 0.25)
    assert saved.q is q and saved.k is k and saved.v is v
    grads = attention_cpu.backward(saved, grad_out)
    want_out, want_saved = attention_reference.forward(q, k, v, None, True, 0.25)
    for name, grad, want in zip(("dq", "dk", "dv"), grads, attention_reference.backward(want_saved, grad_out)):
        assert grad.transpose(0, 2, 1, 3).flags.c_contiguous, name
        assert_close(grad, want, 1e-4, name)
    assert_close(out, want_out, 1e-5, "out")


@pytest.mark.parametrize(
    "view",
    ["time reversed", "heads broadcast", "one step broadcast", "float32 of float64", "depth strided"],
)
def test_fused_kernel_copies_what_blas_cannot_read_in_place(view):
    """Views whose rows BLAS cannot take as one matrix with a leading dimension (time reversed,
    a time step of stride 0, a cast, D not contiguous) are copied; heads broadcast (stride 0
    between heads, rows intact) are read in place. Each gives torch's results."""
    rng = np.random.default_rng(6)
    base = rng.standard_normal((2, 3, 70, 32))
    q, k, v, grad_out = (rng.standard_normal((2, 3, 70, 16)) for _ in range(4))
    if view == "time reversed":
        k = base[:, :, ::-1, :16]
    elif view == "heads broadcast":
        k = np.broadcast_to(base[:, :1, :, :16], (2, 3, 70, 16))
    elif view == "one step broadcast":
        q, grad_out = np.broadcast_to(q[:, :, :1], (2, 3, 1, 16)), np.broadcast_to(grad_out[:, :, :1], (2, 3, 1, 16))
    elif view == "depth strided":
        v = base[:, :, :, ::2]
    cast = view == "float32 of float64"  # k stays float64 among float32 arrays: the kernel casts it
    q_in, v_in, grad_in = (x.astype(np.float32) if cast else x for x in (q, v, grad_out))
    out, saved = attention_cpu.forward(q_in, k, v_in, None, False, 0.25)  # torch's scale, 1 / sqrt(16)
    expected = torch_oracle(*(np.ascontiguousarray(x) for x in (q, k, v, grad_out)), None, False)
    actual = (out, *attention_cpu.backward(saved, grad_in))
    for name, got, wanted in zip(("out", "dq", "dk", "dv"), actual, expected):
        assert_close(got, wanted, TOLERANCE["float32" if cast else "float64"], name)


@pytest.mark.parametrize("kernel", ["reference", "numba"])
@pytest.mark.parametrize(("t_q", "t_k", "depth"), [(0, 5, 4), (5, 0, 4), (70, 0, 4), (5, 5, 0), (70, 70, 0)])
def test_attention_with_an_empty_axis_gives_torchs_result(kernel, t_q, t_k, depth, capfd):
    """No queries: an empty output; no keys: zeros (every row masked), as PyTorch's SDPA; D = 0:
    empty outputs and gradients. Never a division by zero."""
    rng = np.random.default_rng(7)
    q, k, v, grad_out = (
        rng.standard_normal(s) for s in ((2, 2, t_q, depth), (2, 2, t_k, depth), (2, 2, t_k, depth), (2, 2, t_q, depth))
    )
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    want = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
    want.backward(torch.tensor(grad_out))
    q_, k_, v_ = (tl.tensor(a, requires_grad=True) for a in (q, k, v))
    with kernels.use(attention=kernel):
        out = F.scaled_dot_product_attention(q_, k_, v_, is_causal=True)
        out.backward(tl.tensor(grad_out))
    for name, actual, wanted in zip(
        ("out", "dq", "dk", "dv"), (out, q_.grad, k_.grad, v_.grad), (want, tq.grad, tk.grad, tv.grad)
    ):
        assert actual.shape == tuple(wanted.shape), name
        np.testing.assert_array_equal(actual.numpy(), wanted.detach().numpy(), err_msg=name)
    assert capfd.readouterr().err == ""  # nor a complaint of BLAS about its arguments


@pytest.mark.parametrize("t", [64, 100])
def test_fused_output_puts_the_heads_side_by_side_without_a_copy(t):
    """The model's next step, (B, H, T, D) -> (B, T, H * D), is a view of the fused output."""
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((2, 3, t, 16)).astype(np.float32) for _ in range(3))
    out, _ = attention_cpu.forward(q, k, v, None, True, 0.25)
    side_by_side = out.transpose(0, 2, 1, 3)
    assert side_by_side.flags.c_contiguous
    want, _ = attention_reference.forward(q, k, v, None, True, 0.25)
    assert_close(side_by_side.reshape(2, t, 48), want.transpose(0, 2, 1, 3).reshape(2, t, 48), 1e-5, "out")


@pytest.mark.parametrize(
    ("t_q", "t_k", "causal", "masked"),
    [(1030, 1030, True, False), (1100, 1500, False, True), (40, 1030, True, True), (1024, 64, False, False)],
)
def test_fused_kernel_on_long_sequences_matches_torch(t_q, t_k, causal, masked):
    """From 1024 rows on the fused kernel cuts longer blocks: lengths past them, a query side and
    a key side in blocks of different lengths, masks and the causal triangle must still agree."""
    case = AttentionCase(batch=1, n_head=2, t_q=t_q, t_k=t_k, depth=8, causal=causal, mask=None, seed=3)
    q, k, v, grad_out, _ = case.arrays()
    mask = None
    if masked:
        mask = np.where(np.random.default_rng(4).random(t_k) < 0.2, -np.inf, 0.0)
        mask[:1] = 0.0
    expected = torch_oracle(q, k, v, grad_out, mask, causal)
    out, saved = attention_cpu.forward(q, k, v, mask, causal, 1 / np.sqrt(8))
    assert saved.block_k == (attention_cpu.LONG_BLOCK if t_k >= attention_cpu.LONG else attention_cpu.BLOCK)
    assert saved.block_q == (attention_cpu.LONG_BLOCK if t_q >= attention_cpu.LONG else min(t_q, attention_cpu.BLOCK))
    for name, actual, wanted in zip(
        ("out", "dq", "dk", "dv"), (out, *attention_cpu.backward(saved, grad_out)), expected
    ):
        assert_close(actual, wanted, 1e-10, name)
