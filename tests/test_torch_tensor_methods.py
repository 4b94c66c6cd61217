"""Tensor methods with PyTorch's names and signatures give PyTorch's results: each is called the
same way on a tinyllm and a torch tensor holding the same numbers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import tinyllm as tl

VALUES = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7.0 - 1.5
MASK = (np.arange(24).reshape(2, 3, 4) % 3) == 0

# name: a call that works on both libraries' tensors (x is (2, 3, 4))
CALLS = {
    "view": lambda x: x.view(6, 4),
    "view -1": lambda x: x.view(-1),
    "reshape": lambda x: x.reshape((4, 6)),
    "view_as": lambda x: x.view_as(x.reshape(4, 6)),
    "flatten": lambda x: x.flatten(1),
    "unflatten": lambda x: x.unflatten(2, (2, 2)),
    "permute": lambda x: x.permute(2, 0, 1),
    "transpose": lambda x: x.transpose(0, 2),
    "t": lambda x: x[0].t(),
    "mT": lambda x: x.mT,
    "T of a matrix": lambda x: x[0].T,
    "contiguous": lambda x: x.transpose(0, 1).contiguous(),
    "clone": lambda x: x.clone(),
    "detach": lambda x: x.detach(),
    "expand": lambda x: x[:, :1].expand(2, 5, 4),
    "expand_as": lambda x: x[:1].expand_as(x),
    "repeat": lambda x: x[0].repeat(2, 1, 2),
    "chunk": lambda x: x.chunk(2, dim=2)[1],
    "split": lambda x: x.split([1, 2], dim=1)[1],
    "unbind": lambda x: x.unbind(1)[2],
    "pow": lambda x: x.pow(2),
    "mm": lambda x: x[0].mm(x[1].t()),
    "bmm": lambda x: x.bmm(x.transpose(1, 2)),
    "matmul": lambda x: x.matmul(x[0].t()),
    "norm": lambda x: x.norm(dim=-1),
    "norm p=1": lambda x: x.norm(p=1, dim=(0, 2), keepdim=True),
    "min": lambda x: x.min(),
    "min dim": lambda x: x.min(dim=1).values,
    "max dim indices": lambda x: x.max(1, keepdim=True).indices,
    "std": lambda x: x.std(dim=2),
    "mean": lambda x: x.mean(dim=(0, 1)),
    "sum": lambda x: x.sum(-1, keepdim=True),
    "softmax": lambda x: x.softmax(dim=-1),
    "log_softmax": lambda x: x.log_softmax(1),
    "topk": lambda x: x.topk(2, dim=-1).values,
    "topk smallest indices": lambda x: x.topk(2, largest=False).indices,
    "sort": lambda x: x.sort(dim=1, descending=True).values,
    "argsort": lambda x: x.argsort(dim=-1, descending=True),
    "argmax": lambda x: x.argmax(dim=2),
    "argmax flat": lambda x: x.argmax(),
    "cumsum": lambda x: x.cumsum(dim=1),
    "squeeze": lambda x: x[:, :1].squeeze(1),
    "unsqueeze": lambda x: x.unsqueeze(-1),
    "new_zeros": lambda x: x.new_zeros(2, 3),
    "new_ones": lambda x: x.new_ones((3,)),
    "new_tensor": lambda x: x.new_tensor([1.0, 2.0]),
    "new_full": lambda x: x.new_full((2,), 4.0),
    "clamp": lambda x: x.clamp(min=-0.5),
    "abs exp log": lambda x: x.abs().exp().log(),
    "masked_select by index": lambda x: x[:, [0, 2], 1:],
    "logits[:, [-1], :]": lambda x: x[:, [-1], :],
    "tril": lambda x: x.tril(),
    "triu diagonal": lambda x: x.triu(diagonal=1),
}


@pytest.mark.parametrize("name", CALLS)
def test_method_matches_torch(name):
    ours, theirs = CALLS[name](tl.tensor(VALUES)), CALLS[name](torch.tensor(VALUES))
    assert ours.shape == tuple(theirs.shape)
    assert ours.dtype == str(theirs.dtype).removeprefix("torch.")
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)


def test_masked_fill_type_as_and_where_methods_match_torch():
    x, tx = tl.tensor(VALUES), torch.tensor(VALUES)
    mask, tmask = tl.tensor(MASK), torch.tensor(MASK)
    pairs = [
        (x.masked_fill(mask, float("-inf")), tx.masked_fill(tmask, float("-inf"))),
        (x.where(mask, 0.5), tx.where(tmask, 0.5)),
        (tl.where(mask, x, -x), torch.where(tmask, tx, -tx)),
        (mask.type_as(x), tmask.type_as(tx)),
    ]
    for ours, theirs in pairs:
        assert ours.dtype == str(theirs.dtype).removeprefix("torch.")
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_size_dim_numel_as_torch():
    x = tl.tensor(VALUES)
    assert x.size() == (2, 3, 4) and x.size(-1) == 4 and x.dim() == 3 and x.numel() == 24
    assert tl.tensor(1.0).dim() == 0 and tl.zeros(0, 3).numel() == 0
    with pytest.raises(tl.ShapeError, match="dim 3"):
        x.size(3)


def test_view_methods_share_storage_and_clone_does_not():
    x = tl.zeros(2, 3)
    viewed, cloned = x.view(6), x.clone()
    x.add_(1.0)
    assert viewed.tolist() == [1.0] * 6 and cloned.sum().item() == 0.0


def test_detach_shares_storage_and_leaves_the_graph():
    x = tl.ones(2, requires_grad=True)
    y = (x * 2.0).detach()
    assert not y.requires_grad and y.is_leaf and y.tolist() == [2.0, 2.0]


@pytest.mark.parametrize(
    "first_import",
    ["import tinyllm as tl", "import tinyllm.ops", "import tinyllm.autograd.tensor", "import tinyllm.nn.functional"],
)
def test_tensor_methods_exist_whichever_module_is_imported_first(first_import):
    program = f"{first_import}\nimport tinyllm as tl\nassert tl.tensor([[1.0, 2.0]]).sum(dim=1).item() == 3.0"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr


def test_multinomial_draws_by_the_weights_and_without_replacement_never_repeats():
    tl.manual_seed(0)
    draws = tl.multinomial(tl.tensor([0.0, 1.0, 3.0]), 4000, replacement=True)
    counts = np.bincount(draws.numpy(), minlength=3)
    assert draws.dtype == tl.int64 and counts[0] == 0 and abs(counts[2] / counts[1] - 3.0) < 0.3
    rows = tl.multinomial(tl.ones(5, 6), 6)
    assert rows.shape == (5, 6) and all(sorted(row) == list(range(6)) for row in rows.tolist())
    with pytest.raises(tl.ShapeError, match="without replacement"):
        tl.multinomial(tl.ones(3), 4)


def test_inference_mode_and_set_grad_enabled_turn_graph_recording_off():
    x = tl.ones(2, requires_grad=True)
    with tl.inference_mode():
        assert not (x * 2.0).requires_grad
    with tl.set_grad_enabled(False):
        assert not (x * 2.0).requires_grad
    assert (x * 2.0).requires_grad
