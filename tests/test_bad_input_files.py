"""Untrusted files: checkpoints, safetensors, GGUF and tokenizer files, crafted or corrupted.

Every case is a typed error naming the file and the problem, in bounded time and memory (see
bad_input.py), and never reads outside the checkpoint folder, follows a link or blocks on a
device. Hypothesis then feeds the readers random bytes and mutated valid files: only typed
errors (or a successful read) come out, never a hang or a raw exception.
"""

import hashlib
import json
import os
import struct

import gguf  # imported here once, so that no case pays for the first import
import numpy as np
import pytest
from bad_input import expect_typed_error
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinyllm.errors import CheckpointError, ConfigError, TinyLLMError, TokenizerError
from tinyllm.io import Checkpoint, load_checkpoint, save_checkpoint
from tinyllm.io.gguf import check_gguf_layout, read_gguf
from tinyllm.io.safetensors import dumps, load_file, loads
from tinyllm.io.untrusted import json_depth, read_regular_file
from tinyllm.tokenizers import Tokenizer

FILES = {"fuzz": settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])}


# -- checkpoints -------------------------------------------------------------------------------------
def small_checkpoint(step: int = 3) -> Checkpoint:
    weights = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(3, dtype=np.float32)}
    optimizer = {"step": 1, "moments": [np.ones(3, dtype=np.float32)]}
    return Checkpoint(weights, {"model_type": "gpt"}, {"type": "char", "chars": "ab"}, optimizer, {"step": step})


def read_manifest(directory) -> dict:
    return json.loads((directory / "manifest.json").read_text())


def write_manifest(directory, manifest: dict) -> None:
    """Write a manifest with a correct self-checksum, so the check under test is the one that fires."""
    manifest = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    manifest["manifest_sha256"] = hashlib.sha256(canonical).hexdigest()
    (directory / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def saved(tmp_path):
    save_checkpoint(tmp_path, small_checkpoint())
    return tmp_path


def with_file_entry(name: str):
    def change(directory, manifest):
        entry = next(iter(manifest["files"].values()))
        manifest["files"] = {name: entry, **manifest["files"]}

    return change


def with_folder(folder):
    def change(directory, manifest):
        manifest["folder"] = folder

    return change


def with_entry_field(field, value):
    def change(directory, manifest):
        manifest["files"]["model.safetensors"][field] = value

    return change


def with_link(name, target):
    def change(directory, manifest):
        path = directory / manifest["folder"] / name
        path.unlink()
        path.symlink_to(target)

    return change


def with_folder_link(directory, manifest):
    folder = directory / manifest["folder"]
    moved = directory.parent / (directory.name + "-elsewhere")
    folder.rename(moved)
    folder.symlink_to(moved, target_is_directory=True)


def with_file_bytes(name, transform):
    def change(directory, manifest):
        path = directory / manifest["folder"] / name
        path.write_bytes(transform(path.read_bytes()))

    return change


def with_state(state_bytes: bytes, name="state.json"):
    def change(directory, manifest):
        (directory / manifest["folder"] / name).write_bytes(state_bytes)
        manifest["files"][name] = {"bytes": len(state_bytes), "sha256": hashlib.sha256(state_bytes).hexdigest()}

    return change


def flip_byte(data: bytes) -> bytes:
    return data[:20] + bytes([data[20] ^ 0xFF]) + data[21:]


CHECKPOINT_CASES = {
    "file name ../../etc/passwd": (with_file_entry("../../etc/passwd"), "unexpected file name"),
    "file name /etc/passwd": (with_file_entry("/etc/passwd"), "unexpected file name"),
    "file name with a folder": (with_file_entry("sub/model.safetensors"), "unexpected file name"),
    "file name unknown": (with_file_entry("weights.bin"), "unexpected file name"),
    "folder ..": (with_folder(".."), "bad folder name"),
    "folder /etc": (with_folder("/etc"), "bad folder name"),
    "folder ../other": (with_folder("../step-000003-00000000"), "bad folder name"),
    "folder empty": (with_folder(""), "bad folder name"),
    "folder not a string": (with_folder(["step-000003-00000000"]), "folder"),
    "folder absent on disk": (with_folder("step-000003-ffffffff"), "not a folder"),
    "byte count negative": (with_entry_field("bytes", -1), "byte count"),
    "byte count a string": (with_entry_field("bytes", "100"), "byte count"),
    "byte count a bool": (with_entry_field("bytes", True), "byte count"),
    "byte count wrong": (with_entry_field("bytes", 7), "expected 7"),
    "checksum not a string": (with_entry_field("sha256", 5), "sha-256"),
    "checksum wrong": (with_entry_field("sha256", "0" * 64), "sha-256"),
    "weights a link to /etc/passwd": (with_link("model.safetensors", "/etc/passwd"), "symbolic link"),
    "weights a link to /dev/zero": (with_link("model.safetensors", "/dev/zero"), "symbolic link"),
    "state a link inside the folder": (with_link("state.json", "config.json"), "symbolic link"),
    "step folder a link": (with_folder_link, "not a folder"),
    "weights truncated": (with_file_bytes("model.safetensors", lambda d: d[:-4]), "bytes"),
    "weights corrupted": (with_file_bytes("model.safetensors", flip_byte), "sha-256"),
    "state not JSON": (with_state(b"{not json"), "not valid json"),
    "state 100,000 deep": (with_state(b"[" * 100_000 + b"]" * 100_000), "deeper"),
    "state 80 deep": (with_state(b"[" * 80 + b"]" * 80), "80 levels"),
    "state not an object": (with_state(b"[1, 2]"), "not a json object"),
    "state not UTF-8": (with_state(b'{"step": "\xff"}'), "not valid json"),
    "config not an object": (with_state(b'"gpt"', "config.json"), "json objects"),
    "optimizer array missing": (with_state(b'{"step": 3, "optimizer": {"m": {"__array__": "nope"}}}'), "nope"),
}


@pytest.mark.parametrize("case", CHECKPOINT_CASES)
def test_crafted_checkpoint(saved, case):
    change, named = CHECKPOINT_CASES[case]
    manifest = read_manifest(saved)
    change(saved, manifest)
    write_manifest(saved, manifest)
    expect_typed_error(lambda: load_checkpoint(saved), CheckpointError, named)


MANIFEST_CASES = {
    "missing": (lambda d: (d / "manifest.json").unlink(), "no checkpoint"),
    "not JSON": (lambda d: (d / "manifest.json").write_text("{"), "not valid json"),
    "100,000 deep": (lambda d: (d / "manifest.json").write_text("[" * 100_000 + "]" * 100_000), "deeper"),
    "over a megabyte": (lambda d: (d / "manifest.json").write_text(" " * 2_000_000 + "{}"), "bytes"),
    "a list": (lambda d: (d / "manifest.json").write_text("[]"), "not a tinyllm checkpoint manifest"),
    "another format": (lambda d: (d / "manifest.json").write_text('{"format": "x"}'), "not a tinyllm"),
    "its checksum wrong": (
        lambda d: (d / "manifest.json").write_text(
            read_manifest(d) | {"step": 99} and json.dumps(read_manifest(d) | {"step": 99})
        ),
        "checksum",
    ),
    "a link to /etc/passwd": (lambda d: _replace_by_link(d / "manifest.json", "/etc/passwd"), "symbolic link"),
    "a link to /dev/zero": (lambda d: _replace_by_link(d / "manifest.json", "/dev/zero"), "symbolic link"),
    "a folder": (lambda d: _replace_by_folder(d / "manifest.json"), "not a regular file"),
    "a FIFO": (lambda d: _replace_by_fifo(d / "manifest.json"), "not a regular file"),
    "version 2": (lambda d: write_manifest(d, read_manifest(d) | {"version": 2}), "version 2"),
    "files a list": (lambda d: write_manifest(d, read_manifest(d) | {"files": []}), "file list"),
    "no weights listed": (
        lambda d: write_manifest(
            d,
            read_manifest(d)
            | {"files": {k: v for k, v in read_manifest(d)["files"].items() if k != "model.safetensors"}},
        ),
        "model.safetensors",
    ),
}


def _replace_by_link(path, target):
    path.unlink()
    path.symlink_to(target)


def _replace_by_folder(path):
    path.unlink()
    path.mkdir()


def _replace_by_fifo(path):
    path.unlink()
    os.mkfifo(path)


@pytest.mark.parametrize("case", MANIFEST_CASES)
def test_crafted_manifest(saved, case):
    change, named = MANIFEST_CASES[case]
    change(saved)
    expect_typed_error(lambda: load_checkpoint(saved), CheckpointError, named)


def test_saving_removes_only_what_a_manifest_named(tmp_path):
    notes = tmp_path / "step-plan" / "notes.md"
    notes.parent.mkdir()
    notes.write_text("plan")
    lookalike = tmp_path / "step-000001-0badf00d" / "model.safetensors"
    lookalike.parent.mkdir()
    lookalike.write_text("mine")
    first = save_checkpoint(tmp_path, small_checkpoint(1))
    (first / "my-analysis.txt").write_text("kept")  # a user's file inside one of our folders
    (tmp_path / ".manifest.json.abc123.tmp").write_text("left by a crash")
    (tmp_path / "..pending-checkpoint.json.x_9z.tmp").write_text("left by a crash")
    (tmp_path / ".step-000009-12345678.partial").mkdir()
    (tmp_path / ".step-000009-12345678.partial" / "model.safetensors").write_text("half")
    second = save_checkpoint(tmp_path, small_checkpoint(2))
    third = save_checkpoint(tmp_path, small_checkpoint(3))
    assert notes.read_text() == "plan" and lookalike.read_text() == "mine"
    assert sorted(p.name for p in first.iterdir()) == ["my-analysis.txt"]  # our files gone, the user's kept
    assert not second.exists() and third.exists()
    assert not (tmp_path / ".manifest.json.abc123.tmp").exists()
    assert not (tmp_path / "..pending-checkpoint.json.x_9z.tmp").exists()
    assert not (tmp_path / ".step-000009-12345678.partial").exists()
    assert load_checkpoint(tmp_path).step == 3


# -- safetensors -------------------------------------------------------------------------------------
def safetensors_bytes(header, data: bytes = b"", length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


SAFETENSORS_CASES = {
    "empty": (b"", "too short"),
    "7 bytes": (b"\x00" * 7, "too short"),
    "header length 2^64-1": (safetensors_bytes({}, length=2**64 - 1), "header length"),
    "header length past the end": (safetensors_bytes({}, length=100), "header length"),
    "header not JSON": (safetensors_bytes(b"{oops"), "not valid json"),
    "header not UTF-8": (safetensors_bytes(b'{"\xff": 1}'), "not valid json"),
    "header a list": (safetensors_bytes([1, 2]), "not a json object"),
    "header 100,000 deep": (safetensors_bytes(b"[" * 100_000 + b"]" * 100_000), "deeper"),
    "entry not an object": (safetensors_bytes({"x": 5}), "malformed header entry"),
    "entry without dtype": (safetensors_bytes({"x": {"shape": [1], "data_offsets": [0, 4]}}), "malformed"),
    "entry with an extra key": (safetensors_bytes({"x": {**entry(), "extra": 1}}, b"\0" * 8), "malformed"),
    "dtype unknown": (safetensors_bytes({"x": entry(dtype="F8")}, b"\0" * 8), "unknown dtype"),
    "dtype a number": (safetensors_bytes({"x": entry(dtype=5)}, b"\0" * 8), "unknown dtype"),
    "shape not a list": (safetensors_bytes({"x": {**entry(), "shape": 2}}, b"\0" * 8), "shape"),
    "shape negative": (safetensors_bytes({"x": entry(shape=(-2,))}, b"\0" * 8), "shape"),
    "shape a float": (safetensors_bytes({"x": entry(shape=(2.0,))}, b"\0" * 8), "shape"),
    "shape a bool": (safetensors_bytes({"x": entry(shape=(True,), offsets=(0, 4))}, b"\0" * 4), "shape"),
    "shape 2^32 x 2^32 (wraps to 0 in int64)": (
        safetensors_bytes({"x": entry(shape=(2**32, 2**32), offsets=(0, 0))}),
        "needs",
    ),
    "shape of 40 dimensions": (safetensors_bytes({"x": entry(shape=(1,) * 40, offsets=(0, 4))}, b"\0" * 4), "shape"),
    "offsets of 3 numbers": (safetensors_bytes({"x": entry(offsets=(0, 4, 8))}, b"\0" * 8), "data_offsets"),
    "offsets negative": (safetensors_bytes({"x": entry(offsets=(-8, 0))}, b"\0" * 8), "data_offsets"),
    "offsets strings": (safetensors_bytes({"x": entry(offsets=("0", "8"))}, b"\0" * 8), "data_offsets"),
    "offsets not the shape's size": (safetensors_bytes({"x": entry(offsets=(0, 12))}, b"\0" * 12), "needs 8 bytes"),
    "tensors overlapping": (safetensors_bytes({"x": entry(), "y": entry()}, b"\0" * 8), "gap or overlap"),
    "a gap between tensors": (safetensors_bytes({"x": entry(), "y": entry(offsets=(12, 20))}, b"\0" * 20), "gap"),
    "data truncated": (safetensors_bytes({"x": entry()}, b"\0" * 5), "truncated"),
    "trailing bytes": (safetensors_bytes({"x": entry()}, b"\0" * 12), "padded"),
    "metadata not an object": (safetensors_bytes({"__metadata__": [1]}), "__metadata__"),
    "metadata values not strings": (safetensors_bytes({"__metadata__": {"a": 1}}), "__metadata__"),
    "past the end by 2^60": (safetensors_bytes({"x": entry(shape=(2**60,), offsets=(0, 2**62))}), "truncated"),
}


@pytest.mark.parametrize("case", SAFETENSORS_CASES)
def test_crafted_safetensors(case):
    data, named = SAFETENSORS_CASES[case]
    expect_typed_error(lambda: loads(data, source="crafted.safetensors"), CheckpointError, "crafted.safetensors", named)


@pytest.mark.parametrize(
    "make,named",
    [
        (lambda d: d / "missing.safetensors", "cannot read"),
        (lambda d: d, "not a regular file"),
        (lambda d: _fifo(d / "pipe.safetensors"), "not a regular file"),
        (lambda d: _link(d / "zero.safetensors", "/dev/zero"), "not a regular file"),
    ],
)
def test_safetensors_paths_that_are_not_files(tmp_path, make, named):
    path = make(tmp_path)
    expect_typed_error(lambda: load_file(path), CheckpointError, named)


def _fifo(path):
    os.mkfifo(path)
    return path


def _link(path, target):
    path.symlink_to(target)
    return path


VALID_SAFETENSORS = dumps({"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, 2], dtype=np.int64)})


@FILES["fuzz"]
@given(st.binary(max_size=300))
def test_random_bytes_read_as_safetensors_give_only_typed_errors(data):
    try:
        loads(data)
    except CheckpointError:
        pass


@FILES["fuzz"]
@given(st.lists(st.tuples(st.integers(0, len(VALID_SAFETENSORS) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_mutated_safetensors_give_a_typed_error_or_arrays_of_their_header(mutations):
    data = bytearray(VALID_SAFETENSORS)
    for position, value in mutations:
        data[position] = value
    try:
        tensors, _ = loads(bytes(data))
    except CheckpointError:
        return
    assert all(isinstance(t, np.ndarray) for t in tensors.values())


@FILES["fuzz"]
@given(st.integers(0, len(VALID_SAFETENSORS)))
def test_truncated_safetensors_give_a_typed_error(length):
    if length == len(VALID_SAFETENSORS):
        assert set(loads(VALID_SAFETENSORS)[0]) == {"a", "b"}
    else:
        expect_typed_error(lambda: loads(VALID_SAFETENSORS[:length]), CheckpointError)


@pytest.fixture(scope="module")
def checkpoint_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("valid")
    save_checkpoint(directory, small_checkpoint())
    folder = directory / read_manifest(directory)["folder"]
    return {p.name: p.read_bytes() for p in [directory / "manifest.json", *folder.iterdir()]}


@FILES["fuzz"]
@given(data=st.data())
def test_mutated_checkpoints_give_only_typed_errors(tmp_path_factory, checkpoint_files, data):
    directory = tmp_path_factory.mktemp("mutated")
    save_checkpoint(directory, small_checkpoint())
    folder = directory / read_manifest(directory)["folder"]
    name = data.draw(st.sampled_from(sorted(checkpoint_files)))
    path = directory / "manifest.json" if name == "manifest.json" else folder / name
    content = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        content[data.draw(st.integers(0, len(content) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        content = content[: data.draw(st.integers(0, len(content)))]
    path.write_bytes(bytes(content))
    if name != "manifest.json" and data.draw(st.booleans()):  # a manifest that vouches for the change
        manifest = read_manifest(directory)
        manifest["files"][name] = {"bytes": len(content), "sha256": hashlib.sha256(bytes(content)).hexdigest()}
        write_manifest(directory, manifest)
    try:
        load_checkpoint(directory)
    except CheckpointError:
        pass


# -- GGUF ----------------------------------------------------------------------------------------------
def gguf_string(text: bytes | str) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def gguf_bytes(kvs: bytes = b"", n_kv: int = 0, tensors: bytes = b"", n_tensors: int = 0, data: bytes = b"",
               version: int = 3, magic: bytes = b"GGUF") -> bytes:  # fmt: skip
    head = magic + struct.pack("<IQQ", version, n_tensors, n_kv) + kvs + tensors
    return head + b"\0" * (-len(head) % 32) + data


def kv_u32(key: str, value: int) -> bytes:
    return gguf_string(key) + struct.pack("<II", 4, value)


def kv_str(key: str, value: bytes | str) -> bytes:
    return gguf_string(key) + struct.pack("<I", 8) + gguf_string(value)


def kv_array(key: str, element_type: int, count: int, payload: bytes = b"") -> bytes:
    return gguf_string(key) + struct.pack("<IIQ", 9, element_type, count) + payload


def tensor_info(name: str, dims, kind: int = 0, offset: int = 0, n_dims: int | None = None) -> bytes:
    n = len(dims) if n_dims is None else n_dims
    return (
        gguf_string(name)
        + struct.pack("<I", n)
        + struct.pack(f"<{len(dims)}Q", *dims)
        + struct.pack("<IQ", kind, offset)
    )


ARCH = kv_str("general.architecture", "llama")
GGUF_CASES = {
    "empty": (b"", "shorter than its header"),
    "wrong magic": (gguf_bytes(magic=b"GGML") + b"\0" * 8, "does not start with gguf"),
    "version 1": (gguf_bytes(version=1), "version 1"),
    "version 99": (gguf_bytes(version=99), "version 99"),
    "2^60 metadata entries": (gguf_bytes(n_kv=2**60), "metadata entries"),
    "2^60 tensors": (gguf_bytes(n_tensors=2**60), "tensor entries"),
    "a key of 2^63 bytes": (gguf_bytes(struct.pack("<Q", 2**63) + b"xx", 1), "runs past the end"),
    "a key that is not UTF-8": (gguf_bytes(gguf_string(b"\xff\xfe") + struct.pack("<II", 4, 1), 1), "not utf-8"),
    "a string value of 2^62 bytes": (gguf_bytes(gguf_string("k") + struct.pack("<IQ", 8, 2**62), 1), "runs past"),
    "2^60 bytes in an array": (gguf_bytes(kv_array("k", 0, 2**60), 1), "runs past the end"),
    "2^60 strings in an array": (gguf_bytes(kv_array("tokenizer.ggml.tokens", 8, 2**60), 1), "more than"),
    "strings past the end": (
        gguf_bytes(kv_array("k", 8, 2, gguf_string("a") + struct.pack("<Q", 99)), 1),
        "past the end",
    ),
    "arrays nested 3 deep": (
        gguf_bytes(kv_array("k", 9, 1, struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 9, 1) + b"\0" * 16), 1),
        "nests arrays",
    ),
    "unknown value type 13": (gguf_bytes(gguf_string("k") + struct.pack("<I", 13), 1), "unknown value type 13"),
    "array of unknown type 77": (gguf_bytes(kv_array("k", 77, 1), 1), "unknown type 77"),
    "alignment 3": (gguf_bytes(kv_u32("general.alignment", 3), 1), "alignment"),
    "alignment 0": (gguf_bytes(kv_u32("general.alignment", 0), 1), "alignment"),
    "a tensor of 0 dimensions": (gguf_bytes(ARCH, 1, tensor_info("t", [], n_dims=0), 1), "0 dimensions"),
    "a tensor of 5 dimensions": (gguf_bytes(ARCH, 1, tensor_info("t", [1] * 5), 1), "5 dimensions"),
    "a tensor of 2^31 dimensions": (gguf_bytes(ARCH, 1, tensor_info("t", [1], n_dims=2**31), 1), "dimensions"),
    "a tensor of unknown type 99": (
        gguf_bytes(ARCH, 1, tensor_info("t", [4], kind=99), 1, b"\0" * 16),
        "unknown type 99",
    ),
    "a tensor of 2^32 x 2^32 floats": (gguf_bytes(ARCH, 1, tensor_info("t", [2**32, 2**32]), 1), "does not lie"),
    "a tensor past the end": (gguf_bytes(ARCH, 1, tensor_info("t", [64]), 1, b"\0" * 16), "does not lie"),
    "a tensor offset unaligned": (gguf_bytes(ARCH, 1, tensor_info("t", [4], offset=4), 1, b"\0" * 64), "aligned"),
    "a Q4_0 row of 10 values": (gguf_bytes(ARCH, 1, tensor_info("t", [10], kind=2), 1, b"\0" * 64), "block of 32"),
    "truncated in the tensor list": (gguf_bytes(ARCH, 1, tensor_info("t", [4])[:-6], 1), "truncated"),
    "no architecture": (gguf_bytes(kv_u32("x", 1), 1), "general.architecture"),
    "architecture falcon": (gguf_bytes(kv_str("general.architecture", "falcon"), 1), "'falcon'"),
}


@pytest.mark.parametrize("case", GGUF_CASES)
def test_crafted_gguf(tmp_path, case):
    data, named = GGUF_CASES[case]
    path = tmp_path / "crafted.gguf"
    path.write_bytes(data)
    expect_typed_error(lambda: read_gguf(path, architectures=("llama",)), ConfigError, "crafted.gguf", named)


VALID_GGUF = gguf_bytes(
    ARCH
    + kv_u32("llama.context_length", 8)
    + kv_array("tokenizer.ggml.tokens", 8, 2, gguf_string("a") + gguf_string("b")),
    3,
    tensor_info("token_embd.weight", [4, 2]) + tensor_info("output_norm.weight", [4], offset=32),
    2,
    b"\0" * 48,
)


def test_the_valid_handmade_gguf_reads():
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "valid.gguf"
        path.write_bytes(VALID_GGUF)
        gguf_file = read_gguf(path)
        assert gguf_file.field("llama.context_length") == 8
        assert gguf_file.tensor("token_embd.weight").shape == (2, 4)


@FILES["fuzz"]
@given(st.binary(max_size=300))
def test_random_bytes_read_as_gguf_give_only_typed_errors(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("gguf") / "random.gguf"
    path.write_bytes(b"GGUF" + data if data[:1] == b"\x03" else data)
    try:
        check_gguf_layout(path)
    except ConfigError:
        pass


@FILES["fuzz"]
@given(st.lists(st.tuples(st.integers(0, len(VALID_GGUF) - 1), st.integers(0, 255)), min_size=1, max_size=6))
def test_mutated_gguf_gives_a_typed_error_or_a_file(tmp_path_factory, mutations):
    data = bytearray(VALID_GGUF)
    for position, value in mutations:
        data[position] = value
    path = tmp_path_factory.mktemp("gguf") / "mutated.gguf"
    path.write_bytes(bytes(data))
    try:
        gguf_file = read_gguf(path)
        for name in gguf_file.tensor_types:
            gguf_file.tensor(name)
    except TinyLLMError:
        pass


# -- GGUF metadata that describes a model the file does not hold ---------------------------------------
@pytest.fixture(scope="module")
def crafted_llama(tmp_path_factory):
    """Return write(path, **metadata overrides): a tiny Llama GGUF whose metadata may lie."""
    from test_llama import GGUF_SMALL, small_llama, write_llama_gguf

    model = small_llama(**GGUF_SMALL)

    def write(path, **overrides):
        class Lying(gguf.GGUFWriter):
            def add_context_length(self, n):
                super().add_context_length(overrides.get("context_length", n))

            def add_feed_forward_length(self, n):
                super().add_feed_forward_length(overrides.get("feed_forward_length", n))

            def add_block_count(self, n):
                super().add_block_count(overrides.get("block_count", n))

            def add_vocab_size(self, n):
                super().add_vocab_size(overrides.get("vocab_size", n))

            def add_embedding_length(self, n):
                super().add_embedding_length(overrides.get("embedding_length", n))

        original, gguf.GGUFWriter = gguf.GGUFWriter, Lying
        try:
            write_llama_gguf(path, model)
        finally:
            gguf.GGUFWriter = original
        return path

    return write


@pytest.mark.parametrize(
    "overrides,named",
    [
        ({"context_length": 2**31}, "block_size"),
        ({"context_length": 2**20}, "block_size"),
        ({"feed_forward_length": 2**17}, "weights"),
        ({"block_count": 10**6}, "n_layer"),
        ({"block_count": 400}, "weights"),
        ({"vocab_size": 2**30}, "vocab_size"),
        ({"embedding_length": 2**20}, "n_embd"),
        ({"context_length": 0}, "block_size"),
    ],
)
def test_gguf_metadata_is_bounded_before_a_model_is_built(tmp_path, crafted_llama, overrides, named):
    from tinyllm.models.llama import Llama

    path = crafted_llama(tmp_path / "lying.gguf", **overrides)
    expect_typed_error(lambda: Llama.from_gguf(path), ConfigError, "lying.gguf", named)


# -- tokenizer files ----------------------------------------------------------------------------------
TOKENIZER_FILES = {
    "not JSON": (b"{", "not valid json"),
    "100,000 deep": (b"[" * 100_000 + b"]" * 100_000, "deeper"),
    "a list": (b"[]", "unknown tokenizer type"),
    "unknown type": (b'{"type": "unigram"}', "unigram"),
    "a type that is a list": (b'{"type": []}', "unknown tokenizer type"),
    "char without chars": (b'{"type": "char"}', "missing"),
    "bpe without merges": (b'{"type": "bpe", "vocab": {"a": 0}, "pattern": "a"}', "missing"),
    "bpe id 10^12": (b'{"type": "bpe", "vocab": {"a": 1000000000000}, "merges": [], "pattern": "a"}', "token id"),
    "bpe id a string": (b'{"type": "bpe", "vocab": {"a": "0"}, "merges": [], "pattern": "a"}', "token id"),
    "bpe merge of three": (
        b'{"type": "bpe", "vocab": {"a": 0}, "merges": [["a", "b", "c"]], "pattern": "a"}',
        "merge 0",
    ),
    "bpe pattern that does not compile": (
        b'{"type": "bpe", "vocab": {"a": 0}, "merges": [], "pattern": "("}',
        "compile",
    ),
    "not UTF-8": (b'{"type": "\xff"}', "not valid json"),
}


@pytest.mark.parametrize("case", TOKENIZER_FILES)
def test_crafted_tokenizer_file(tmp_path, case):
    data, named = TOKENIZER_FILES[case]
    path = tmp_path / "tokenizer.json"
    path.write_bytes(data)
    expect_typed_error(lambda: Tokenizer.load(path), TokenizerError, named)


@pytest.mark.parametrize(
    "make,named",
    [
        (lambda d: d / "absent.json", "cannot read"),
        (lambda d: d, "not a regular file"),
        (lambda d: _fifo(d / "pipe.json"), "not a regular file"),
        (lambda d: _link(d / "zero.json", "/dev/zero"), "not a regular file"),
    ],
)
def test_tokenizer_paths_that_are_not_files(tmp_path, make, named):
    path = make(tmp_path)
    expect_typed_error(lambda: Tokenizer.load(path), TokenizerError, named)


def test_json_depth_counts_the_nesting_of_lists_and_dicts():
    values = [3, "x", [], {}, [1, [2]], {"a": [{"b": {}}]}, [[], [[[]]]]]
    assert [json_depth(v) for v in values] == [0, 0, 1, 1, 2, 4, 4]


@pytest.mark.skipif(not os.path.isfile("/proc/self/status"), reason="needs Linux's /proc")
def test_a_file_holding_more_bytes_than_its_size_says_is_refused():
    # /proc files are regular files of size 0 that hold text: a read of the size alone is empty
    with open("/proc/self/status", "rb") as f:
        assert os.fstat(f.fileno()).st_size == 0 and f.read()
    with pytest.raises(CheckpointError, match="changed size while being read"):
        read_regular_file("/proc/self/status", CheckpointError)
