"""Tensor's methods (x.masked_fill(...), x.softmax(...), ...) against PyTorch's methods of the same
name: each must call its op with the arguments in the right places."""

import numpy as np
import pytest
import torch

import tinyllm as tl

VALUES = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
MASK = VALUES > 0.3

CALLS = {
    "masked_fill": lambda x, mask: x.masked_fill(mask, 0.5),
    "clip": lambda x, mask: x.clip(-0.5, 0.25),
    "softmax": lambda x, mask: x.softmax(1),
    "log_softmax": lambda x, mask: x.log_softmax(-1),
    "sum": lambda x, mask: x.sum(1),
    "mean": lambda x, mask: x.mean(2),
    "transpose": lambda x, mask: x.transpose(0, 2),
    "permute": lambda x, mask: x.permute(2, 0, 1),
    "flatten": lambda x, mask: x.flatten(1),
    "expand": lambda x, mask: x[:, :1].expand(2, 5, 4),
    "unsqueeze": lambda x, mask: x.unsqueeze(1),
    "matmul": lambda x, mask: x.matmul(x.transpose(-2, -1)),
    "pow": lambda x, mask: x.abs() ** 1.5,
    "rsub": lambda x, mask: 2.0 - x,
    "rtruediv": lambda x, mask: 1.0 / (x.abs() + 1.0),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_tensor_method_matches_the_torch_method(name):
    call = CALLS[name]
    x = tl.tensor(VALUES, requires_grad=True)
    x_t = torch.tensor(VALUES, requires_grad=True)
    out, out_t = call(x, tl.tensor(MASK)), call(x_t, torch.from_numpy(MASK))
    np.testing.assert_allclose(out.numpy(), out_t.detach().numpy(), rtol=1e-5, atol=1e-6)
    cotangent = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    out.backward(tl.tensor(cotangent))
    out_t.backward(torch.from_numpy(cotangent))
    np.testing.assert_allclose(x.grad.numpy(), x_t.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int64", "bool"])
def test_element_size_and_new_empty_match_the_torch_methods(dtype):
    x, x_t = tl.zeros(2, 3, dtype=dtype), torch.zeros(2, 3, dtype=getattr(torch, dtype))
    assert x.element_size() == x_t.element_size()
    for size in [(4, 5), ((4, 5),)]:
        empty, empty_t = x.new_empty(*size), x_t.new_empty(*size)
        assert tuple(empty.shape) == tuple(empty_t.shape)
        assert str(empty.dtype) == str(empty_t.dtype).removeprefix("torch.")
