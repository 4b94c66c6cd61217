"""Matrix products straight from GGUF's Q8_0/Q4_1 blocks: the layout against gguf's own
dequantization, the Numba kernel against its reference, and SmolLM2 decoding from the blocks
against the same model on float32 weights (logits within 1e-2, the same greedy tokens)."""

import gguf
import numpy as np
import pytest
from gguf.quants import dequantize, quantize
from hypothesis import given
from hypothesis import strategies as st

import tinyllm as tl
from tinyllm.errors import DeviceError, UnsupportedError
from tinyllm.hub import download
from tinyllm.kernels import choose, qmatmul_cpu, qmatmul_reference
from tinyllm.kernels.qmatmul_reference import QuantizedWeight
from tinyllm.models import Llama
from tinyllm.nn.quantized import QuantizedLinear
from tinyllm.ops.linalg import quantized_linear

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPTS = ["The capital of France is", "def fibonacci(n):\n    if n < 2:"]


def quantized(kind: str, weight: np.ndarray) -> tuple[QuantizedWeight, np.ndarray]:
    """Return the weight quantized by gguf (llama.cpp's code) and gguf's dequantization of it."""
    qtype = gguf.GGMLQuantizationType[kind]
    blocks = quantize(weight, qtype)
    return QuantizedWeight.from_blocks(kind, blocks), dequantize(blocks, qtype)


@given(
    kind=st.sampled_from(["Q8_0", "Q4_1"]),
    rows=st.integers(1, 5),
    n_out=st.integers(1, 70),
    n_blocks=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_the_kernel_matches_the_reference_and_ggufs_dequantization(kind, rows, n_out, n_blocks, seed):
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((n_out, n_blocks * 32)).astype(np.float32)
    x = rng.standard_normal((rows, n_blocks * 32)).astype(np.float32)
    blocks, dense = quantized(kind, weight)
    np.testing.assert_array_equal(qmatmul_reference.dequantize(blocks), dense)
    want = x.astype(np.float64) @ dense.T.astype(np.float64)
    np.testing.assert_allclose(qmatmul_reference.linear(x, blocks), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(qmatmul_cpu.linear(x, blocks), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["Q8_0", "Q4_1"])
def test_the_kernel_reads_every_byte_value_and_a_second_tile(kind):
    # 130 output rows: two full tiles of 64 and a partial third; every one of the 256 byte values
    # in each row (Q4_1's float trick splits a byte into its nibbles without integer operations)
    rng = np.random.default_rng(1)
    n_out, n_in = 130, 512
    size = n_in if kind == "Q8_0" else n_in // 2
    values = np.array([rng.permutation(np.resize(np.arange(256), size)) for _ in range(n_out)], dtype=np.uint8)
    scales = rng.uniform(0.5, 2.0, (n_out, n_in // 32)).astype(np.float32)
    mins = None if kind == "Q8_0" else rng.uniform(-1.0, 1.0, (n_out, n_in // 32)).astype(np.float32)
    weight = QuantizedWeight(kind, scales, mins, values.view(np.int8) if kind == "Q8_0" else values)
    x = rng.standard_normal((3, n_in)).astype(np.float32)
    want = x.astype(np.float64) @ qmatmul_reference.dequantize(weight).T.astype(np.float64)
    np.testing.assert_allclose(qmatmul_cpu.linear(x, weight), want, rtol=1e-5, atol=1e-3)
    assert qmatmul_cpu.tiled(weight) is qmatmul_cpu.tiled(weight)  # the tile-order copy is made once


def test_rows_and_stack_keep_each_rows_blocks():
    weight = np.random.default_rng(0).standard_normal((6, 64)).astype(np.float32)
    blocks, dense = quantized("Q4_1", weight)
    order = np.array([5, 0, 3, 1, 2, 4])
    np.testing.assert_array_equal(qmatmul_reference.dequantize(blocks.rows(order)), dense[order])
    stacked = QuantizedWeight.stack([blocks, blocks.rows(order[:2])])
    np.testing.assert_array_equal(qmatmul_reference.dequantize(stacked), np.concatenate([dense, dense[order[:2]]]))


def test_quantized_linear_refuses_what_it_cannot_do():
    blocks, _ = quantized("Q8_0", np.ones((4, 32), np.float32))
    assert choose("qmatmul", np.zeros((1, 32), np.float32)) is qmatmul_cpu
    with pytest.raises(UnsupportedError, match="no backward"):
        quantized_linear(tl.ones(1, 32, requires_grad=True), blocks)
    with pytest.raises(DeviceError, match="float32"):
        quantized_linear(tl.ones(1, 32, dtype="float64"), blocks)


def test_a_quantized_linear_uses_the_blocks_only_for_few_rows_without_gradients():
    weight = np.random.default_rng(1).standard_normal((8, 64)).astype(np.float32)
    blocks, dense = quantized("Q4_1", weight)
    layer = QuantizedLinear(tl.nn.Parameter(tl.tensor(dense)), blocks)
    x = tl.tensor(np.random.default_rng(2).standard_normal((2, 64)).astype(np.float32))
    with tl.no_grad():
        assert layer(x).grad_fn is None
        np.testing.assert_allclose(layer(x).numpy(), x.numpy() @ dense.T, rtol=1e-4, atol=1e-4)
    assert type(layer(x).grad_fn).__name__ == "Linear"  # the weight wants a gradient: float32 path
    assert list(dict(layer.named_parameters())) == ["weight"]


@pytest.fixture(scope="module")
def models():
    path = download("smollm2", quiet=True) / GGUF_NAME
    return Llama.from_gguf(path), Llama.from_gguf(path, quantized=True)


def test_smollm2_decodes_from_the_blocks_within_1e_2_of_float32(models):
    plain, quantized_model = models
    assert quantized_model.head_blocks.kind == "Q8_0"
    assert isinstance(quantized_model.layers[0].mlp.down_proj, QuantizedLinear)
    ids = plain.tokenizer.encode(PROMPTS[0])
    logits = {}
    for name, model in (("plain", plain), ("quantized", quantized_model)):
        cache = model.new_cache()
        with tl.no_grad():
            model(tl.tensor([ids[:-1]]), cache=cache)
            logits[name] = model(tl.tensor([ids[-1:]]), cache=cache).numpy()[0, 0]  # (V,)
    assert np.abs(logits["quantized"]).max() > 1.0
    np.testing.assert_allclose(logits["quantized"], logits["plain"], atol=1e-2, rtol=0)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_smollm2_greedy_tokens_from_the_blocks_equal_float32(models, prompt):
    plain, quantized_model = models
    ids = plain.tokenizer.encode(prompt)
    want = plain.generate(ids, max_new_tokens=20, temperature=0.0)[0]
    assert quantized_model.generate(ids, max_new_tokens=20, temperature=0.0)[0] == want
