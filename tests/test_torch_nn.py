"""tinyllm.nn against torch.nn: Module's registries and state dict, the containers, each layer,
MultiheadAttention and the Transformer modules, the losses, F's PyTorch signatures, nn.init and
clip_grad_norm_. Weights are copied from the torch module (load_state_dict), then outputs and
gradients are compared."""

# ruff: noqa: N803, N806 - L, S, N, E: the sizes of attention, as PyTorch's documentation names them

from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st

import tinyllm as tl
import tinyllm.nn as nn
import tinyllm.nn.functional as F
from tinyllm.errors import ArgumentError, CheckpointError, OutOfRangeError, ShapeError, UnsupportedError

pytestmark = pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")


@pytest.fixture(autouse=True, scope="module")
def torch_on_one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def copy_weights(ours: nn.Module, theirs: torch.nn.Module) -> None:
    ours.load_state_dict({name: value.detach().numpy() for name, value in theirs.state_dict().items()})


def randn(*shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def forward_and_grads(module, torch_module, inputs, **kwargs):
    """Run both modules on the same float inputs; return (ours, theirs), each (output, input
    grads, parameter grads by name), the loss a fixed random projection of the output."""
    results = []
    for engine, mod in (("tl", module), ("torch", torch_module)):
        if engine == "tl":
            tensors = [tl.tensor(x, requires_grad=x.dtype == np.float32) for x in inputs]
        else:
            tensors = [torch.tensor(x, requires_grad=x.dtype == np.float32) for x in inputs]
        out = mod(*tensors, **kwargs)
        out = out[0] if isinstance(out, tuple) else out
        projection = randn(*out.shape, seed=9)
        weight = tl.tensor(projection) if engine == "tl" else torch.tensor(projection)
        (out * weight).sum().backward()
        input_grads = [t.grad.numpy() if t.grad is not None else None for t in tensors]
        named = mod.named_parameters() if hasattr(mod, "named_parameters") else ()
        param_grads = {n: p.grad.numpy() for n, p in named if p.grad is not None}
        results.append((out.detach().numpy(), input_grads, param_grads))
    return results


def assert_same_run(ours, theirs, rtol=1e-4, atol=1e-5):
    np.testing.assert_allclose(ours[0], theirs[0], rtol=rtol, atol=atol)
    for a, b in zip(ours[1], theirs[1]):
        if b is not None:
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    assert set(ours[2]) == set(theirs[2])
    for name in theirs[2]:
        np.testing.assert_allclose(ours[2][name], theirs[2][name], rtol=rtol, atol=atol, err_msg=name)


# -- Module ---------------------------------------------------------------------------------------
def with_buffers(lib):
    m = lib.nn.Module()
    m.linear = lib.nn.Linear(3, 2)
    m.register_buffer("running", lib.ones(2))
    m.register_buffer("scratch", lib.zeros(4), persistent=False)
    return m


def test_buffers_persistent_ones_are_saved_and_all_are_moved():
    m = with_buffers(tl)
    assert list(m.state_dict()) == list(with_buffers(torch).state_dict())
    assert list(m.state_dict()) == ["running", "linear.weight", "linear.bias"]
    assert [name for name, _ in m.named_buffers()] == ["running", "scratch"]
    assert [name for name, _ in m.named_parameters()] == ["linear.weight", "linear.bias"]
    m.double()
    assert m.running.dtype == m.scratch.dtype == m.linear.weight.dtype == "float64"
    m.half()
    assert m.running.dtype == "float16"


def test_load_state_dict_writes_buffers_and_reports_keys():
    m = with_buffers(tl)
    state = m.state_dict()
    state["running"] = np.array([5.0, 6.0], dtype=np.float32)
    assert m.load_state_dict(state) == ([], [])
    np.testing.assert_array_equal(m.running.numpy(), [5.0, 6.0])
    del state["linear.bias"]
    state["extra"] = np.zeros(1)
    with pytest.raises(CheckpointError, match="linear.bias.*extra"):
        m.load_state_dict(state)
    assert m.load_state_dict(state, strict=False) == (["linear.bias"], ["extra"])


def test_apply_visits_children_before_parents_like_torch():
    def build(lib):
        return lib.Sequential(lib.Linear(2, 2), lib.Sequential(lib.ReLU(), lib.Linear(2, 1)))

    ours, theirs = [], []
    build(nn).apply(lambda m: ours.append(type(m).__name__))
    build(torch.nn).apply(lambda m: theirs.append(type(m).__name__))
    assert ours == theirs


def test_children_add_module_and_requires_grad():
    m = nn.Module()
    m.add_module("first", nn.Linear(2, 2))
    m.second = nn.Tanh()
    assert [name for name, _ in m.named_children()] == ["first", "second"]
    assert list(m.children())[0] is m.first
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())
    with pytest.raises(ArgumentError, match="'first.x'|'.'"):
        m.add_module("first.x", nn.Tanh())


def test_zero_grad_to_zeros_or_none():
    m = nn.Linear(2, 2)
    m(tl.ones(1, 2)).sum().backward()
    m.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(m.weight.grad.numpy(), np.zeros((2, 2)))
    m.zero_grad()
    assert m.weight.grad is None


def test_a_plain_tensor_cannot_replace_a_parameter():
    m = nn.Linear(2, 2)
    with pytest.raises(ArgumentError, match="weight"):
        m.weight = tl.ones(2, 2)


def test_tied_weight_counts_once_and_loads_from_a_torch_state_dict_with_both_names():
    def tied(lib):
        m = lib.Module()
        m.wte = lib.Embedding(5, 3)
        m.head = lib.Linear(3, 5, bias=False)
        m.wte.weight = m.head.weight
        return m

    ours, theirs = tied(nn), tied(torch.nn)
    assert len(list(ours.parameters())) == len(list(theirs.parameters())) == 1
    assert set(theirs.state_dict()) == {"wte.weight", "head.weight"}
    copy_weights(ours, theirs)
    assert list(ours.state_dict()) == ["wte.weight"]
    np.testing.assert_array_equal(ours.head.weight.numpy(), theirs.head.weight.detach().numpy())
    assert ours.wte.weight is ours.head.weight


def test_to_keeps_ties_and_casts_only_floats():
    m = nn.Module()
    m.a = nn.Linear(2, 2)
    m.b = nn.Linear(2, 2)
    m.b.weight = m.a.weight
    m.register_buffer("ids", tl.tensor([1, 2]))
    weight = m.a.weight
    m.to(dtype="float64")
    assert m.a.weight is m.b.weight is weight  # converted in place: an optimizer built before still holds it
    assert weight.dtype == "float64" and m.ids.dtype == "int64"


# -- containers -----------------------------------------------------------------------------------
def test_sequential_names_and_slices_match_torch():
    layers = OrderedDict([("fc", nn.Linear(2, 3)), ("act", nn.ReLU()), ("out", nn.Linear(3, 1))])
    torch_layers = OrderedDict(
        [("fc", torch.nn.Linear(2, 3)), ("act", torch.nn.ReLU()), ("out", torch.nn.Linear(3, 1))]
    )
    ours, theirs = nn.Sequential(layers), torch.nn.Sequential(torch_layers)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert list(nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 2)).state_dict()) == [
        "0.weight", "0.bias", "2.weight", "2.bias",
    ]  # fmt: skip
    copy_weights(ours, theirs)
    x = randn(4, 2)
    expected = theirs(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(ours(tl.tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)
    assert isinstance(ours[1:], nn.Sequential) and list(ours[1:]._modules) == ["act", "out"]
    assert ours[-1] is ours.out and len(ours) == 3


def test_module_list_edits_renumber_like_a_list():
    a, b, c = nn.Tanh(), nn.ReLU(), nn.Sigmoid()
    layers = nn.ModuleList([a])
    layers.extend([c])
    layers.insert(1, b)
    assert list(layers) == [a, b, c] and list(layers._modules) == ["0", "1", "2"]
    del layers[0]
    assert list(layers) == [b, c] and layers[0] is b and len(layers[1:]) == 1


def test_module_dict_holds_modules_by_key():
    d = nn.ModuleDict({"wte": nn.Embedding(4, 2), "h": nn.ModuleList([nn.Linear(2, 2)])})
    assert "wte" in d and list(d.keys()) == ["wte", "h"] and d["wte"] is d.wte
    assert list(d.state_dict()) == ["wte.weight", "h.0.weight", "h.0.bias"]
    d["ln"] = nn.LayerNorm(2)
    assert len(d) == 3 and d.pop("ln") is not None and "ln" not in d


# -- layers ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda lib: lib.Linear(5, 3),
        lambda lib: lib.Linear(5, 3, bias=False),
        lambda lib: lib.LayerNorm(5),
        lambda lib: lib.LayerNorm((4, 5), eps=1e-3),
        lambda lib: lib.LayerNorm(5, elementwise_affine=False),
        lambda lib: lib.LayerNorm(5, bias=False),
        lambda lib: lib.RMSNorm(5),
        lambda lib: lib.RMSNorm((4, 5), eps=1e-4),
        lambda lib: lib.GELU(),
        lambda lib: lib.GELU(approximate="tanh"),
        lambda lib: lib.ReLU(),
        lambda lib: lib.SiLU(),
        lambda lib: lib.Tanh(),
        lambda lib: lib.Sigmoid(),
        lambda lib: lib.Identity(),
        lambda lib: lib.Softmax(dim=-1),
        lambda lib: lib.LogSoftmax(dim=1),
        lambda lib: lib.Dropout(0.3).eval(),
    ],
)
def test_layer_matches_torch(make):
    ours, theirs = make(nn), make(torch.nn)
    copy_weights(ours, theirs)
    assert_same_run(*forward_and_grads(ours, theirs, [randn(3, 4, 5)]))


@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
def test_softmax_without_dim_picks_torchs_legacy_dim(ndim):
    x = randn(*(3,) * ndim)
    with pytest.warns(UserWarning):
        expected = torch.nn.Softmax()(torch.tensor(x)).numpy()
    np.testing.assert_allclose(nn.Softmax()(tl.tensor(x)).numpy(), expected, rtol=1e-6)


def test_embedding_padding_row_starts_at_zero_and_gets_no_gradient():
    ours, theirs = nn.Embedding(6, 3, padding_idx=2), torch.nn.Embedding(6, 3, padding_idx=2)
    np.testing.assert_array_equal(ours.weight.numpy()[2], np.zeros(3))
    copy_weights(ours, theirs)
    ids = np.array([[2, 0, 2], [5, 2, 1]])
    assert_same_run(*forward_and_grads(ours, theirs, [ids]))
    assert nn.Embedding(6, 3, padding_idx=-1).padding_idx == 5


@pytest.mark.parametrize("argument", [{"max_norm": 1.0}, {"sparse": True}, {"scale_grad_by_freq": True}])
def test_embedding_arguments_tinyllm_lacks_raise_unsupported(argument):
    with pytest.raises(UnsupportedError, match=next(iter(argument))):
        nn.Embedding(4, 2, **argument)


def test_dropout_zeroes_about_p_and_scales_the_rest():
    tl.manual_seed(0)
    out = nn.Dropout(0.25)(tl.ones(20000)).numpy()
    assert abs((out == 0).mean() - 0.25) < 0.02
    np.testing.assert_allclose(out[out != 0], 1 / 0.75, rtol=1e-6)
    np.testing.assert_array_equal(F.dropout(tl.ones(5), p=1.0).numpy(), np.zeros(5))
    with pytest.raises(ArgumentError, match="p"):
        nn.Dropout(1.5)


# -- attention and the Transformer ----------------------------------------------------------------
def _bool_mask(L, S, seed):  # noqa: N803
    mask = np.random.default_rng(seed).random((L, S)) < 0.3
    mask[:, 0] = False  # every query keeps one key (torch gives NaN for a fully masked row)
    return mask


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("mask", ["none", "bool", "float", "padding", "causal"])
def test_multihead_attention_matches_torch(batch_first, need_weights, mask):
    L, S, N, E = 4, 5, 2, 8
    ours = nn.MultiheadAttention(E, 2, batch_first=batch_first)
    theirs = torch.nn.MultiheadAttention(E, 2, batch_first=batch_first)
    copy_weights(ours, theirs)
    q_shape, kv_shape = ((N, L, E), (N, S, E)) if batch_first else ((L, N, E), (S, N, E))
    inputs = [randn(*q_shape, seed=1), randn(*kv_shape, seed=2), randn(*kv_shape, seed=3)]
    kwargs = {"need_weights": need_weights}
    if mask == "bool":
        kwargs["attn_mask"] = _bool_mask(L, S, 4)
    elif mask == "float":
        kwargs["attn_mask"] = randn(L, S, seed=5)
    elif mask == "padding":
        padding = np.zeros((N, S), dtype=bool)
        padding[0, -2:] = True
        kwargs["key_padding_mask"] = padding
    elif mask == "causal":
        inputs[1] = inputs[2] = randn(*q_shape, seed=2)
        kwargs["attn_mask"] = np.triu(np.ones((L, L), dtype=bool), 1)
        kwargs["is_causal"] = True
    ours_kwargs = {k: tl.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    theirs_kwargs = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    ours_out, ours_weights = ours(*[tl.tensor(x) for x in inputs], **ours_kwargs)
    theirs_out, theirs_weights = theirs(*[torch.tensor(x) for x in inputs], **theirs_kwargs)
    np.testing.assert_allclose(ours_out.numpy(), theirs_out.detach().numpy(), rtol=1e-4, atol=1e-5)
    if need_weights:
        np.testing.assert_allclose(ours_weights.numpy(), theirs_weights.detach().numpy(), rtol=1e-4, atol=1e-6)
    else:
        assert ours_weights is None and theirs_weights is None


@pytest.mark.parametrize("argument", [{"add_bias_kv": True}, {"add_zero_attn": True}, {"kdim": 4}])
def test_multihead_attention_arguments_tinyllm_lacks_raise_unsupported(argument):
    with pytest.raises(UnsupportedError, match=next(iter(argument))):
        nn.MultiheadAttention(8, 2, **argument)


def test_multihead_self_attention_gradients_match_torch():
    ours, theirs = nn.MultiheadAttention(8, 4), torch.nn.MultiheadAttention(8, 4)
    copy_weights(ours, theirs)

    def self_attention(module):
        return lambda x: module(x, x, x, need_weights=False)[0]

    runs = forward_and_grads(self_attention(ours), self_attention(theirs), [randn(5, 2, 8)])
    # forward_and_grads reads parameters from the callable; compare the modules' own grads here
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(runs[0][1][0], runs[1][1][0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.in_proj_weight.grad.numpy(), theirs.in_proj_weight.grad.numpy(), atol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_transformer_encoder_matches_torch(norm_first, activation, batch_first):
    def make(lib):
        layer = lib.TransformerEncoderLayer(8, 2, 16, 0.0, activation, batch_first=batch_first, norm_first=norm_first)
        return lib.TransformerEncoder(layer, 2, norm=lib.LayerNorm(8))

    ours, theirs = make(nn), make(torch.nn)
    copy_weights(ours, theirs)
    mask = nn.Transformer.generate_square_subsequent_mask(5).numpy()
    np.testing.assert_array_equal(mask, torch.nn.Transformer.generate_square_subsequent_mask(5).numpy())
    x = randn(2, 5, 8) if batch_first else randn(5, 2, 8)
    ours_run = forward_and_grads(lambda x: ours(x, tl.tensor(mask)), lambda x: theirs(x, torch.tensor(mask)), [x])
    np.testing.assert_allclose(ours_run[0][0], ours_run[1][0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours_run[0][1][0], ours_run[1][1][0], rtol=1e-4, atol=1e-5)
    for (name, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


def test_transformer_with_padding_masks_matches_torch():
    def make(lib):
        return lib.Transformer(8, 2, 2, 2, 16, dropout=0.0, batch_first=True)

    torch.manual_seed(0)
    ours, theirs = make(nn), make(torch.nn)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    copy_weights(ours, theirs)
    src, tgt = randn(2, 6, 8, seed=1), randn(2, 4, 8, seed=2)
    src_padding = np.zeros((2, 6), dtype=bool)
    src_padding[1, 4:] = True
    tgt_mask = torch.nn.Transformer.generate_square_subsequent_mask(4).numpy()

    def run(module, lib_tensor):
        return lambda s, t: module(
            s,
            t,
            tgt_mask=lib_tensor(tgt_mask),
            src_key_padding_mask=lib_tensor(src_padding),
            memory_key_padding_mask=lib_tensor(src_padding),
        )

    ours_run, theirs_run = forward_and_grads(run(ours, tl.tensor), run(theirs, torch.tensor), [src, tgt])
    np.testing.assert_allclose(ours_run[0], theirs_run[0], rtol=1e-4, atol=1e-5)
    for a, b in zip(ours_run[1], theirs_run[1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_transformer_decoder_layer_pre_norm_matches_torch():
    def make(lib):
        return lib.TransformerDecoderLayer(8, 2, 16, 0.0, norm_first=True)

    ours, theirs = make(nn), make(torch.nn)
    copy_weights(ours, theirs)
    mask = np.triu(np.ones((3, 3), dtype=bool), 1)
    runs = forward_and_grads(
        lambda t, m: ours(t, m, tgt_mask=tl.tensor(mask)),
        lambda t, m: theirs(t, m, tgt_mask=torch.tensor(mask)),
        [randn(3, 2, 8, seed=1), randn(4, 2, 8, seed=2)],
    )
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-4, atol=1e-5)
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# -- losses ---------------------------------------------------------------------------------------
CE_CASES = [
    ((6, 4), {}),
    ((6, 4), {"reduction": "sum"}),
    ((6, 4), {"reduction": "none", "ignore_index": 1}),
    ((6, 4), {"weight": True}),
    ((6, 4), {"weight": True, "ignore_index": 0, "label_smoothing": 0.1}),
    ((6, 4), {"label_smoothing": 0.2, "reduction": "sum"}),
    ((3, 4, 5), {}),
    ((3, 4, 2, 2), {"weight": True, "reduction": "none"}),
    ((4,), {}),
]


@pytest.mark.parametrize("shape, options", CE_CASES)
@pytest.mark.parametrize("soft", [False, True])
def test_cross_entropy_matches_torch(shape, options, soft):
    rng = np.random.default_rng(len(shape))
    logits = rng.standard_normal(shape).astype(np.float32)
    class_shape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    if soft:
        if "ignore_index" in options:
            return  # PyTorch ignores ignore_index for probability targets; nothing more to compare
        target = rng.random(shape).astype(np.float32)
        target /= target.sum(axis=1 if len(shape) > 1 else 0, keepdims=True)
    else:
        target = rng.integers(0, 4, class_shape)
    weight = rng.random(4).astype(np.float32) + 0.5 if options.get("weight") else None
    kwargs = {k: v for k, v in options.items() if k != "weight"}
    results = []
    for fn, make in ((F.cross_entropy, tl.tensor), (TF.cross_entropy, torch.tensor)):
        x = make(logits, requires_grad=True)
        loss = fn(x, make(target), weight=None if weight is None else make(weight), **kwargs)
        (loss * make(np.linspace(0.5, 1.5, loss.numel()).reshape(loss.shape).astype(np.float32))).sum().backward()
        results.append((loss.detach().numpy(), x.grad.numpy()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_and_mse_losses_match_torch(reduction):
    logp = np.log(np.random.default_rng(3).dirichlet(np.ones(5), size=6)).astype(np.float32)
    target = np.array([0, 4, 2, -100, 1, 1])
    ours = nn.NLLLoss(reduction=reduction)(tl.tensor(logp), tl.tensor(target)).numpy()
    theirs = torch.nn.NLLLoss(reduction=reduction)(torch.tensor(logp), torch.tensor(target)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    a, b = randn(3, 4, seed=1), randn(3, 4, seed=2)
    ours = nn.MSELoss(reduction=reduction)(tl.tensor(a), tl.tensor(b)).numpy()
    np.testing.assert_allclose(ours, TF.mse_loss(torch.tensor(a), torch.tensor(b), reduction=reduction), rtol=1e-6)


def test_loss_errors_name_the_problem():
    logits = tl.tensor(randn(2, 3))
    with pytest.raises(OutOfRangeError, match="3"):
        F.cross_entropy(logits, tl.tensor([0, 3]))
    with pytest.raises(UnsupportedError, match="size_average"):
        F.cross_entropy(logits, tl.tensor([0, 1]), size_average=True)
    with pytest.raises(ArgumentError, match="reduction"):
        nn.CrossEntropyLoss(reduction="average")
    with pytest.raises(ShapeError):
        F.mse_loss(logits, tl.tensor(randn(3, 2)))


# -- F with PyTorch's signatures ------------------------------------------------------------------
def test_layer_norm_over_two_axes_matches_torch():
    x, w, b = randn(2, 3, 4), randn(3, 4, seed=1), randn(3, 4, seed=2)
    ours = F.layer_norm(tl.tensor(x), (3, 4), tl.tensor(w), tl.tensor(b), eps=1e-4).numpy()
    theirs = TF.layer_norm(torch.tensor(x), (3, 4), torch.tensor(w), torch.tensor(b), eps=1e-4).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    with pytest.raises(ShapeError, match="normalized_shape"):
        F.layer_norm(tl.tensor(x), (4, 3))


def test_one_hot_and_pad_match_torch():
    ids = np.array([[0, 2], [1, 3]])
    np.testing.assert_array_equal(F.one_hot(tl.tensor(ids)).numpy(), TF.one_hot(torch.tensor(ids)).numpy())
    assert F.one_hot(tl.tensor(ids), num_classes=6).shape == (2, 2, 6)
    assert F.one_hot(tl.tensor(ids)).dtype == "int64"
    x = randn(2, 3, 4)
    for pad in [(1, 2), (0, 0, 2, 1), (-1, 2, 1, -2), (1, 1, 1, 1, 1, 1)]:
        ours = F.pad(tl.tensor(x), pad, value=0.5).numpy()
        np.testing.assert_array_equal(ours, TF.pad(torch.tensor(x), pad, value=0.5).numpy())
    with pytest.raises(UnsupportedError, match="reflect"):
        F.pad(tl.tensor(x), (1, 1), mode="reflect")


@pytest.mark.parametrize("shape", [(5, 4), (3, 5, 4), (2, 3, 5, 4)])
@pytest.mark.parametrize("is_causal", [False, True])
def test_sdpa_takes_any_leading_axes_like_torch(shape, is_causal):
    q, k, v = randn(*shape, seed=1), randn(*shape, seed=2), randn(*shape, seed=3)
    ours = F.scaled_dot_product_attention(tl.tensor(q), tl.tensor(k), tl.tensor(v), is_causal=is_causal)
    theirs = TF.scaled_dot_product_attention(torch.tensor(q), torch.tensor(k), torch.tensor(v), is_causal=is_causal)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)


def test_sdpa_grouped_query_attention_and_value_width_match_torch():
    q, k, v = randn(1, 4, 5, 8, seed=1), randn(1, 2, 5, 8, seed=2), randn(1, 2, 5, 3, seed=3)
    ours = F.scaled_dot_product_attention(tl.tensor(q), tl.tensor(k), tl.tensor(v), enable_gqa=True, scale=0.3)
    theirs = TF.scaled_dot_product_attention(
        torch.tensor(q), torch.tensor(k), torch.tensor(v), enable_gqa=True, scale=0.3
    )
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)


def test_sdpa_dropout_keeps_rows_unbiased_and_is_off_at_zero():
    q = tl.tensor(np.zeros((1, 1, 4, 2), dtype=np.float32))
    v = tl.tensor(np.ones((1, 1, 400, 2), dtype=np.float32))
    k = tl.tensor(np.zeros((1, 1, 400, 2), dtype=np.float32))
    tl.manual_seed(0)
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5).numpy()
    assert np.all(np.abs(out - 1.0) < 0.25) and not np.allclose(out, 1.0)
    np.testing.assert_allclose(F.scaled_dot_product_attention(q, k, v, dropout_p=0.0).numpy(), 1.0, rtol=1e-6)


def test_sdpa_with_a_mask_and_is_causal_applies_both_as_torch_does_with_their_conjunction():
    q, k, v = (tl.tensor(randn(1, 2, 5, 3)) for _ in range(3))
    padding = np.array([[False, True, True, True, True]])  # (1, Tk): the first key is padding
    causal = np.tril(np.ones((5, 5), dtype=bool))
    for p in (0.0, 0.5):  # the fused path, and the array path that dropout takes
        tl.manual_seed(0)
        got = F.scaled_dot_product_attention(q, k, v, attn_mask=tl.tensor(padding), dropout_p=p, is_causal=True)
        tl.manual_seed(0)
        both = tl.tensor(padding & causal)
        expected = F.scaled_dot_product_attention(q, k, v, attn_mask=both, dropout_p=p)
        np.testing.assert_allclose(got.numpy()[:, :, 1:], expected.numpy()[:, :, 1:], rtol=1e-5, atol=1e-6)
    torch_out = torch.nn.functional.scaled_dot_product_attention(
        *(torch.tensor(t.numpy()) for t in (q, k, v)), attn_mask=torch.tensor(padding & causal)
    )
    got = F.scaled_dot_product_attention(q, k, v, attn_mask=tl.tensor(padding), is_causal=True)
    np.testing.assert_allclose(got.numpy()[:, :, 1:], torch_out.numpy()[:, :, 1:], rtol=1e-5, atol=1e-6)


def test_numpy_argument_names_still_work_and_unknown_ones_are_named():
    x = tl.tensor(randn(2, 3))
    np.testing.assert_allclose(F.softmax(x, axis=0).numpy(), F.softmax(x, dim=0).numpy())
    with pytest.raises(UnsupportedError, match="temperature"):
        F.softmax(x, dim=0, temperature=2.0)


# -- nn.init --------------------------------------------------------------------------------------
@pytest.mark.parametrize("nonlinearity, param", [("linear", None), ("relu", None), ("tanh", None), ("leaky_relu", 0.2)])
def test_calculate_gain_and_fans_match_torch(nonlinearity, param):
    assert nn.init.calculate_gain(nonlinearity, param) == pytest.approx(
        torch.nn.init.calculate_gain(nonlinearity, param)
    )
    w = tl.zeros(6, 4, 3)
    assert nn.init._calculate_fan_in_and_fan_out(w) == torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(6, 4, 3))


@given(rows=st.integers(20, 60), cols=st.integers(20, 60))
def test_init_draws_follow_the_formulas(rows, cols):
    tl.manual_seed(rows * 100 + cols)
    w = tl.zeros(rows, cols)
    bound = (6 / (rows + cols)) ** 0.5
    values = nn.init.xavier_uniform_(w).numpy()
    assert values.min() >= -bound and values.max() <= bound and values.std() > bound / 3
    std = nn.init.kaiming_normal_(w, nonlinearity="relu").numpy().std()
    assert std == pytest.approx((2 / cols) ** 0.5, rel=0.2)
    std = nn.init.xavier_normal_(w, gain=2.0).numpy().std()
    assert std == pytest.approx(2 * (2 / (rows + cols)) ** 0.5, rel=0.2)
    bound = (3 / rows) ** 0.5 * nn.init.calculate_gain("leaky_relu", 0.0)
    values = nn.init.kaiming_uniform_(w, mode="fan_out").numpy()
    assert values.min() >= -bound and values.max() <= bound
    values = nn.init.trunc_normal_(w, std=1.0, a=-0.5, b=0.5).numpy()
    assert values.min() >= -0.5 and values.max() <= 0.5
    values = nn.init.normal_(w, mean=3.0, std=0.1).numpy()
    assert values.mean() == pytest.approx(3.0, abs=0.05)


def test_init_fills_in_place_and_returns_the_tensor():
    w = nn.Parameter(tl.zeros(3, 2))
    assert nn.init.constant_(w, 0.5) is w
    np.testing.assert_array_equal(w.numpy(), np.full((3, 2), 0.5))
    nn.init.ones_(w)
    np.testing.assert_array_equal(w.numpy(), np.ones((3, 2)))
    assert w.requires_grad and w.grad_fn is None
    with pytest.raises(ArgumentError, match="mode"):
        nn.init.kaiming_uniform_(w, mode="fan_avg")
    with pytest.raises(UnsupportedError, match="generator"):
        nn.init.uniform_(w, generator=object())


# -- clip_grad_norm_ ------------------------------------------------------------------------------
@pytest.mark.parametrize("max_norm, norm_type", [(0.5, 2.0), (100.0, 2.0), (0.3, 1.0), (0.2, float("inf"))])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    grads = [randn(3, 4, seed=1), randn(5, seed=2)]
    ours = [nn.Parameter(tl.zeros(*g.shape)) for g in grads]
    theirs = [torch.nn.Parameter(torch.zeros(g.shape)) for g in grads]
    for p, tp, g in zip(ours, theirs, grads):
        p.grad, tp.grad = tl.tensor(g), torch.tensor(g)
    total = nn.utils.clip_grad_norm_(ours, max_norm, norm_type)
    torch_total = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert total.item() == pytest.approx(torch_total.item(), rel=1e-6)
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-6)


def test_clip_grad_norm_rejects_a_negative_max_norm():
    p = nn.Parameter(tl.ones(2))
    p.grad = tl.ones(2)
    with pytest.raises(ArgumentError, match="max_norm"):
        nn.utils.clip_grad_norm_([p], -1.0)
