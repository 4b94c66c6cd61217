"""A small reader and writer of the safetensors format (no pickle, no code execution on load).

    8 bytes    header length N, unsigned 64-bit little-endian
    N bytes    JSON header: {name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
               "__metadata__": {str: str}}, padded with spaces to a multiple of 8
    the rest   the tensors' raw little-endian bytes, back to back; offsets count from here

Every way a file can be malformed (short, header length past the end, bad JSON, unknown dtype,
offsets that overlap, leave gaps or disagree with the shape) raises `CheckpointError`. BF16
tensors are read as float32 (NumPy has no bfloat16); the writer takes NumPy arrays.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from pathlib import Path

from tinyllm.backend import np
from tinyllm.errors import CheckpointError
from tinyllm.io.untrusted import parse_json, read_regular_file

MAX_HEADER_BYTES = 100_000_000  # the limit of the reference implementation (safetensors' Rust crate)
MAX_NDIM = 32  # NumPy's own limit is 64; no model weight has more than a handful

DTYPES = {
    "BOOL": np.dtype("bool"),
    "U8": np.dtype("u1"),
    "I8": np.dtype("i1"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "F16": np.dtype("<f2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F64": np.dtype("<f8"),
    "BF16": np.dtype("<u2"),  # stored as 16-bit words, widened to float32 on read
}
NAMES = {(dtype.kind, dtype.itemsize): name for name, dtype in DTYPES.items() if name != "BF16"}


def _dtype_name(array: np.ndarray) -> str:
    name = NAMES.get((array.dtype.kind, array.dtype.itemsize))
    if name is None:
        raise CheckpointError(f"safetensors cannot store dtype {array.dtype}")
    return name


def dumps(tensors: dict, metadata: dict[str, str] | None = None) -> bytes:
    """Return the safetensors bytes of {name: NumPy array} (largest items first, then by name)."""
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    arrays = {name: np.asarray(value) for name, value in tensors.items()}
    order = sorted(arrays, key=lambda name: (-arrays[name].dtype.itemsize, name))
    chunks, offset = [], 0
    for name in order:
        array = arrays[name]
        dtype_name = _dtype_name(array)
        raw = np.ascontiguousarray(array, dtype=DTYPES[dtype_name]).tobytes()
        header[name] = {"dtype": dtype_name, "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)
    return struct.pack("<Q", len(header_bytes)) + header_bytes + b"".join(chunks)


def loads(data: bytes, source: str = "safetensors data") -> tuple[dict, dict]:
    """Return ({name: NumPy array}, metadata) from safetensors bytes, validating every offset.

    Everything is checked before any array is made: the header's length against the data, each
    dtype, each shape (non-negative integers, their product in exact integer arithmetic, so
    2^32 x 2^32 does not wrap to 0), each offset pair against the shape, and the tensors tiling
    the data section with no gap or overlap.
    """
    if len(data) < 8:
        raise CheckpointError(f"{source}: {len(data)} bytes is too short for a safetensors header length (8 bytes)")
    (header_length,) = struct.unpack("<Q", data[:8])
    if header_length > min(len(data) - 8, MAX_HEADER_BYTES):
        raise CheckpointError(
            f"{source}: header length {header_length} runs past the end of the {len(data)}-byte file "
            f"or over the {MAX_HEADER_BYTES}-byte limit"
        )
    header = parse_json(memoryview(data)[8 : 8 + header_length], f"{source}: the header", CheckpointError)
    if not isinstance(header, dict):
        raise CheckpointError(f"{source}: the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{source}: __metadata__ must map strings to strings, got {str(metadata)[:100]}")
    buffer = memoryview(data)[8 + header_length :]
    entries = [_header_entry(name, entry, source) for name, entry in header.items()]
    entries.sort()
    position = 0
    for begin, end, name, _, _ in entries:
        if begin != position:
            raise CheckpointError(
                f"{source}: tensor {name!r} starts at byte {begin}, expected {position} (gap or overlap)"
            )
        position = end
    if position != len(buffer):
        raise CheckpointError(
            f"{source}: the tensors cover {position} bytes but the data section has {len(buffer)} (truncated or padded)"
        )
    tensors = {}
    for begin, end, name, dtype_name, shape in entries:
        array = np.frombuffer(buffer[begin:end], dtype=DTYPES[dtype_name]).reshape(shape)
        if dtype_name == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = array.astype(array.dtype.newbyteorder("="), copy=True)
    return tensors, metadata


def _header_entry(name: str, entry, source: str) -> tuple:
    """Return (begin, end, name, dtype name, shape) of one header entry, checked."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise CheckpointError(
            f"{source}: malformed header entry for tensor {name!r}: it needs exactly dtype, shape and data_offsets, "
            f"got {str(entry)[:100]}"
        )
    dtype_name, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype_name, str) or dtype_name not in DTYPES:
        raise CheckpointError(f"{source}: tensor {name!r} has unknown dtype {str(dtype_name)[:40]!r}")
    if not isinstance(shape, list) or len(shape) > MAX_NDIM or not all(_is_count(d) for d in shape):
        raise CheckpointError(
            f"{source}: tensor {name!r} has shape {str(shape)[:100]}; expected at most {MAX_NDIM} non-negative integers"
        )
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(o) for o in offsets):
        raise CheckpointError(f"{source}: tensor {name!r} has data_offsets {str(offsets)[:100]}; expected [begin, end]")
    begin, end = offsets
    needed = math.prod(shape) * DTYPES[dtype_name].itemsize  # Python ints: no overflow
    if end - begin != needed:
        raise CheckpointError(
            f"{source}: tensor {name!r} of dtype {dtype_name} and shape {shape} needs "
            f"{needed} bytes, its offsets [{begin}, {end}] give {end - begin}"
        )
    return begin, end, name, dtype_name, shape


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def save_file(tensors: dict, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write tensors to path atomically: a temporary file in the same folder, fsync, then rename."""
    write_atomic(path, dumps(tensors, metadata))


def load_file(path: str | os.PathLike) -> dict:
    """Return {name: NumPy array} of a safetensors file."""
    return load_file_with_metadata(path)[0]


def load_file_with_metadata(path: str | os.PathLike) -> tuple[dict, dict]:
    """Return ({name: NumPy array}, metadata) of a safetensors file."""
    return loads(read_regular_file(path, CheckpointError), source=str(path))


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes to path so that a reader sees the old file or the whole new one, never a part."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
