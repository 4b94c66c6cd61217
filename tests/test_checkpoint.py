"""safetensors (ours against the `safetensors` package) and checkpoints (round trip, atomicity, corruption)."""

import json
import struct

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyllm.errors import CheckpointError
from tinyllm.io import Checkpoint, has_checkpoint, load_checkpoint, load_file, save_checkpoint, save_file
from tinyllm.io.checkpoint import MANIFEST
from tinyllm.io.safetensors import dumps, loads

DTYPES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"]
arrays = st.sampled_from(DTYPES).flatmap(
    lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
)
tensor_dicts = st.dictionaries(st.text(min_size=1, max_size=8), arrays, max_size=4)


def assert_same_tensors(a, b):
    assert set(a) == set(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape
        assert a[name].tobytes() == b[name].tobytes()


# -- safetensors ----------------------------------------------------------------------------------
@given(tensor_dicts)
def test_files_we_write_are_read_by_the_safetensors_package(tensors):
    assert_same_tensors(safetensors.numpy.load(dumps(tensors)), tensors)


@given(tensor_dicts)
def test_files_the_safetensors_package_writes_are_read_by_us(tensors):
    ours, metadata = loads(safetensors.numpy.save(tensors, metadata={"format": "np"}))
    assert_same_tensors(ours, tensors)
    assert metadata == {"format": "np"}


def test_our_bytes_equal_the_packages_bytes():
    tensors = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(3, np.float16), "i": np.arange(2)}
    assert dumps(tensors, {"a": "b"}) == safetensors.numpy.save(tensors, metadata={"a": "b"})


def test_bf16_is_read_as_float32():
    import torch
    from safetensors.torch import save

    values = torch.tensor([1.5, -2.0, 3.140625], dtype=torch.bfloat16)
    ours, _ = loads(save({"x": values}))
    assert ours["x"].dtype == np.float32
    assert ours["x"].tolist() == values.float().tolist()


def test_save_file_and_load_file_round_trip(tmp_path):
    tensors = {"a": np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)}
    save_file(tensors, tmp_path / "x.safetensors")
    assert_same_tensors(load_file(tmp_path / "x.safetensors"), tensors)
    assert [p.name for p in tmp_path.iterdir()] == ["x.safetensors"]


def header_file(header: dict, data: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.mark.parametrize(
    "blob, message",
    [
        (b"\x01\x02", "too short"),
        (struct.pack("<Q", 1000) + b"{}", "runs past the end"),
        (struct.pack("<Q", 2) + b"{[", "not valid JSON"),
        (header_file({"x": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4), "unknown dtype"),
        (header_file({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4), "needs 8 bytes"),
        (header_file({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 3), "truncated"),
        (
            header_file(
                {
                    "x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                    "y": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]},
                },
                b"\0" * 6,
            ),
            "gap or overlap",
        ),
        (header_file({"x": {"dtype": "F32"}}), "malformed header entry"),
    ],
)
def test_malformed_safetensors_is_a_checkpoint_error(blob, message):
    with pytest.raises(CheckpointError, match=message):
        loads(blob)


# -- checkpoints ----------------------------------------------------------------------------------
def make_checkpoint(step=7):
    rng = np.random.default_rng(step)
    optimizer = {
        "param_groups": [{"lr": 1e-3, "betas": [0.9, 0.99], "params": [0, 1]}],
        "state": {"0": {"step": step, "exp_avg": rng.standard_normal((3, 2)).astype(np.float32)}},
    }
    return Checkpoint(
        weights={"w": rng.standard_normal((3, 2)).astype(np.float32), "b": np.zeros(2, np.float32)},
        config={"model_type": "gpt", "n_layer": 1},
        tokenizer={"type": "char", "chars": "abc"},
        optimizer=optimizer,
        state={"step": step, "rng": {"state": {"state": 2**100 + 3, "inc": 5}}, "data": {"batches_drawn": step}},
    )


def test_checkpoint_round_trips_weights_json_and_optimizer_arrays(tmp_path):
    saved = make_checkpoint()
    save_checkpoint(tmp_path / "ckpt", saved)
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert_same_tensors(loaded.weights, saved.weights)
    assert loaded.config == saved.config and loaded.tokenizer == saved.tokenizer
    assert loaded.state == saved.state and loaded.step == 7
    assert np.array_equal(loaded.optimizer["state"]["0"]["exp_avg"], saved.optimizer["state"]["0"]["exp_avg"])
    assert loaded.optimizer["param_groups"] == saved.optimizer["param_groups"]


def test_a_new_save_replaces_the_old_one_and_leaves_one_folder(tmp_path):
    save_checkpoint(tmp_path, make_checkpoint(1))
    save_checkpoint(tmp_path, make_checkpoint(2))
    save_checkpoint(tmp_path, make_checkpoint(2))
    assert load_checkpoint(tmp_path).step == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [
        json.loads((tmp_path / MANIFEST).read_text())["folder"]
    ]


def test_a_save_that_fails_midway_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, make_checkpoint(1))
    import tinyllm.io.checkpoint as module

    def broken_write(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(module, "write_atomic", broken_write)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path, make_checkpoint(2))
    assert load_checkpoint(tmp_path).step == 1


def test_missing_checkpoint_is_a_checkpoint_error(tmp_path):
    assert not has_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path)


@given(data=st.data())
def test_any_truncation_or_flipped_byte_is_detected(tmp_path_factory, data):
    directory = tmp_path_factory.mktemp("ckpt")
    save_checkpoint(directory, make_checkpoint())
    folder = directory / json.loads((directory / MANIFEST).read_text())["folder"]
    files = sorted([*folder.iterdir(), directory / MANIFEST])
    victim = data.draw(st.sampled_from(files), label="file")
    content = bytearray(victim.read_bytes())
    if data.draw(st.booleans(), label="truncate"):
        content = content[: data.draw(st.integers(0, len(content) - 1), label="length")]
    else:
        position = data.draw(st.integers(0, len(content) - 1), label="position")
        content[position] ^= data.draw(st.integers(1, 255), label="xor")
    victim.write_bytes(bytes(content))
    with pytest.raises(CheckpointError):
        load_checkpoint(directory)


# every single-bit flip of these masks, at every byte of every file, and every truncation
FLIP_MASKS = (0x01, 0x20, 0x80)


def test_every_truncation_and_every_flipped_bit_of_every_file_is_detected(tmp_path):
    save_checkpoint(tmp_path, make_checkpoint())
    folder = tmp_path / json.loads((tmp_path / MANIFEST).read_text())["folder"]
    files = sorted([*folder.iterdir(), tmp_path / MANIFEST])
    assert len(files) == 6
    undetected = []
    for victim in files:
        original = victim.read_bytes()
        corruptions = [(f"truncated to {n} bytes", original[:n]) for n in range(len(original))]
        for position in range(len(original)):
            for mask in FLIP_MASKS:
                content = bytearray(original)
                content[position] ^= mask
                corruptions.append((f"byte {position} ^ {mask:#04x}", bytes(content)))
        for what, content in corruptions:
            victim.write_bytes(content)
            try:
                load_checkpoint(tmp_path)
                undetected.append(f"{victim.name}: {what}")
            except CheckpointError:
                pass
        victim.write_bytes(original)
    assert load_checkpoint(tmp_path).step == 7
    assert not undetected, f"{len(undetected)} corruptions loaded without error, e.g. {undetected[:5]}"
