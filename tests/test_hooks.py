"""Forward hooks on Module (PyTorch's semantics): pre-hooks see and may replace the positional
arguments, forward hooks see and may replace the output, handles remove them; and inside a real
model the hooks see the very tensors the model computes with."""

import numpy as np

import tinyllm as tl
from tinyllm.models import GPT, GPTConfig
from tinyllm.nn import Linear, Module
from tinyllm.nn import functional as F


class Double(Module):
    def forward(self, x, y=None):
        return x * 2.0 if y is None else x * 2.0 + y


def test_forward_hook_sees_args_and_output_and_its_return_value_replaces_the_output():
    layer, seen = Double(), []
    handle = layer.register_forward_hook(lambda module, args, output: seen.append((module, args, output)))
    x = tl.tensor([1.0, 2.0])
    out = layer(x)
    assert seen[0][0] is layer and seen[0][1][0] is x and seen[0][2] is out
    handle.remove()
    layer.register_forward_hook(lambda module, args, output: output + 1.0)
    assert layer(x).tolist() == [3.0, 5.0]


def test_pre_hook_return_value_replaces_the_arguments_and_a_non_tuple_becomes_the_first():
    layer = Double()
    with layer.register_forward_pre_hook(lambda module, args: (args[0] + 10.0, *args[1:])):
        assert layer(tl.tensor([1.0]), tl.tensor([1.0])).tolist() == [23.0]
    assert layer(tl.tensor([1.0])).tolist() == [2.0]  # the `with` block removed the hook
    with layer.register_forward_pre_hook(lambda module, args: tl.tensor([5.0])):
        assert layer(tl.tensor([1.0])).tolist() == [10.0]


def test_hooks_run_in_registration_order_and_removing_one_keeps_the_others():
    layer, order = Double(), []
    first = layer.register_forward_hook(lambda m, a, o: order.append("first"))
    layer.register_forward_hook(lambda m, a, o: order.append("second"))
    layer.register_forward_pre_hook(lambda m, a: order.append("pre"))
    layer(tl.tensor([1.0]))
    assert order == ["pre", "first", "second"]
    first.remove()
    first.remove()  # removing twice is harmless
    order.clear()
    layer(tl.tensor([1.0]))
    assert order == ["pre", "second"]


def test_keyword_arguments_reach_forward_but_not_the_hooks():
    layer, seen = Double(), []
    layer.register_forward_hook(lambda m, args, o: seen.append(len(args)))
    assert layer(tl.tensor([1.0]), y=tl.tensor([3.0])).tolist() == [5.0]
    assert seen == [1]


def test_gradients_flow_through_a_replaced_output():
    layer = Linear(3, 2)
    layer.register_forward_hook(lambda m, a, output: output * 3.0)
    x = tl.randn(4, 3)
    layer(x).sum().backward()
    np.testing.assert_allclose(layer.weight.grad.numpy(), 3.0 * np.tile(x.numpy().sum(0), (2, 1)), rtol=1e-5)


def test_hooks_in_a_gpt_see_the_tensors_the_model_computes_with():
    tl.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=2, n_head=2, n_embd=16)).eval()
    seen = {}
    model.h[0].register_forward_hook(lambda m, a, out: seen.__setitem__("block0_out", out))
    model.h[1].register_forward_pre_hook(lambda m, args: seen.__setitem__("block1_in", args[0]))
    model.ln_f.register_forward_hook(lambda m, a, out: seen.__setitem__("ln_f", out))
    model.h[1].attn.attend.register_forward_hook(lambda m, args, out: seen.__setitem__("attend", (args, out)))
    with tl.no_grad():
        logits = model(tl.tensor([[1, 5, 7, 2]]))
    assert seen["block1_in"] is seen["block0_out"]  # the same object flows from one block to the next
    head = F.linear(seen["ln_f"].reshape(4, 16), model.wte.weight).reshape(1, 4, 20)
    np.testing.assert_array_equal(head.numpy(), logits.numpy())
    (q, k, v, mask, is_causal), out = seen["attend"]
    assert q.shape == k.shape == v.shape == out.shape == (1, 2, 4, 8) and mask is None and is_causal is True
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    np.testing.assert_array_equal(out.numpy(), expected.numpy())


def test_a_module_without_hooks_carries_no_hook_state():
    assert "_hooks" not in Double().__dict__
