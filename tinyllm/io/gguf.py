"""Read a GGUF file (llama.cpp's format): its metadata and its tensors, dequantized to float32.

A GGUF file holds key/value metadata (architecture, sizes, tokenizer) and named tensors, many of
them quantized in blocks (Q4_1: 32 weights share a float16 scale and minimum, 4 bits each;
Q8_0: 32 weights share a scale, 8 bits each). We read it with the `gguf` package that llama.cpp
publishes, and dequantize with `gguf.quants.dequantize`, so every weight reaches tinyllm as a
float32 array.

Shapes: GGUF lists dimensions fastest-first (ggml's `ne`), the reader gives NumPy arrays in the
usual order, so a linear layer's weight comes back as (out_features, in_features), as in PyTorch.

A GGUF file is untrusted input: before the `gguf` reader sees it, `check_gguf_layout` walks its
header with every count, length and offset checked against the bytes that are really there
(a crafted array count of 2^60 or a tensor past the end is a ConfigError in time proportional
to the file, not a hang or a huge allocation). The values a model is built from are bounded
where they are used (`LlamaConfig`, the tokenizer, the chat template).
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from tinyllm.backend import np
from tinyllm.errors import ConfigError

# The tensor encodings we dequantize (all go through gguf.quants.dequantize).
SUPPORTED_TYPES = ("F32", "F16", "BF16", "Q4_0", "Q4_1", "Q8_0")

# Big arrays that are only read when asked for (the reader keeps every other array's values).
_LAZY_ARRAYS = ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type", "tokenizer.ggml.scores")


@dataclass
class GGUFFile:
    """The metadata {key: value} and the tensors of one GGUF file, read lazily."""

    path: Path
    metadata: dict
    tensor_types: dict[str, str]  # tensor name -> quantization type name ("Q4_1", "F32", ...)
    tensor_elements: dict[str, int]  # tensor name -> number of weights
    _reader: object = field(repr=False)

    @property
    def architecture(self) -> str:
        return self.metadata["general.architecture"]

    def field(self, key: str, default=None):
        """Return the value of a metadata key (lists for arrays), or default if absent."""
        if key in self.metadata:
            return self.metadata[key]
        if key in _LAZY_ARRAYS and key in self._reader.fields:
            value = self._reader.fields[key].contents()
            self.metadata[key] = value
            return value
        return default

    def require(self, key: str):
        """Return the value of a metadata key; ConfigError naming the key if the file lacks it."""
        value = self.field(key)
        if value is None:
            raise ConfigError(f"GGUF file {self.path.name} lacks metadata key {key!r}")
        return value

    def tensor(self, name: str):
        """Return the tensor `name` as a float32 NumPy array (rows, cols) in PyTorch order."""
        from gguf.quants import dequantize

        tensor = self._tensors().get(name)
        if tensor is None:
            raise ConfigError(f"GGUF file {self.path.name} has no tensor {name!r}")
        array = dequantize(tensor.data, tensor.tensor_type)
        return np.ascontiguousarray(array, dtype=np.float32)

    def raw_blocks(self, name: str):
        """Return (type name, bytes) of a tensor as the file stores it: for a quantized (rows, cols)
        tensor, (rows, bytes a row) uint8 blocks, which the quantized matmul kernels read directly."""
        tensor = self._tensors().get(name)
        if tensor is None:
            raise ConfigError(f"GGUF file {self.path.name} has no tensor {name!r}")
        return self.tensor_types[name], np.asarray(tensor.data)

    def has_tensor(self, name: str) -> bool:
        return name in self.tensor_types

    def _tensors(self) -> dict:
        cached = self.__dict__.get("_by_name")
        if cached is None:
            cached = {t.name: t for t in self._reader.tensors}
            self.__dict__["_by_name"] = cached
        return cached


def read_gguf(path, architectures: tuple[str, ...] | None = None) -> GGUFFile:
    """Return the GGUFFile at path; ConfigError if it is missing, unreadable, of another
    architecture than `architectures`, or holds a tensor type outside SUPPORTED_TYPES."""
    import gguf

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"GGUF file not found: {path}")
    check_gguf_layout(path)
    try:
        reader = gguf.GGUFReader(path, "r")
    except (ValueError, OSError, IndexError, KeyError, TypeError, OverflowError, struct.error) as error:
        raise ConfigError(f"cannot read {path.name} as a GGUF file: {error}") from error
    metadata = {}
    for key, reader_field in reader.fields.items():
        if key in _LAZY_ARRAYS:
            continue
        try:
            metadata[key] = reader_field.contents()
        except (ValueError, IndexError):
            continue  # a value type the reader cannot decode; no model key we read is one
    architecture = metadata.get("general.architecture")
    if architecture is None:
        raise ConfigError(f"GGUF file {path.name} has no general.architecture")
    if architectures is not None and architecture not in architectures:
        raise ConfigError(
            f"GGUF file {path.name} is of architecture {architecture!r}; supported: {', '.join(architectures)}"
        )
    tensor_types = {t.name: t.tensor_type.name for t in reader.tensors}
    unsupported = sorted({kind for kind in tensor_types.values() if kind not in SUPPORTED_TYPES})
    if unsupported:
        example = next(name for name, kind in tensor_types.items() if kind in unsupported)
        raise ConfigError(
            f"GGUF file {path.name} holds tensors quantized as {', '.join(unsupported)} (e.g. {example!r}); "
            f"supported: {', '.join(SUPPORTED_TYPES)}"
        )
    tensor_elements = {t.name: int(t.n_elements) for t in reader.tensors}
    return GGUFFile(path, metadata, tensor_types, tensor_elements, reader)


# -- the layout check -----------------------------------------------------------------------------
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
_MAX_DIMS = 4  # ggml's GGML_MAX_DIMS
_MAX_ARRAY_NESTING = 2


def check_gguf_layout(path: str | os.PathLike) -> None:
    """Raise ConfigError naming the file and the problem unless path is a well-formed GGUF file:
    magic and version, every metadata key and value inside the file, every array count possible
    in the bytes left, every tensor of a known type with 1-4 dimensions and its data inside the
    data section (sizes in exact integer arithmetic)."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 24:
                raise ConfigError(f"cannot read {path.name} as a GGUF file: {size} bytes is shorter than its header")
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror or error}") from None
    with data:
        cursor = _Cursor(data, path.name)
        if cursor.take(4) != b"GGUF":
            raise ConfigError(f"cannot read {path.name} as a GGUF file: it does not start with GGUF")
        version = cursor.scalar("I")
        if version not in (2, 3):
            raise ConfigError(f"GGUF file {path.name} is of version {version}; supported: 2, 3")
        n_tensors, n_kv = cursor.scalar("Q"), cursor.scalar("Q")
        cursor.room_for(n_kv, 12, "metadata entries")  # a key length, a (possibly empty) key and a type
        cursor.room_for(n_tensors, 24, "tensor entries")
        alignment = 32
        for _ in range(n_kv):
            key = cursor.string("a metadata key")
            kind = cursor.scalar("I")
            value = cursor.value(kind, key, depth=0)
            if key == "general.alignment":
                if not isinstance(value, int) or value < 1 or value & (value - 1) or value > 1 << 20:
                    raise ConfigError(f"GGUF file {path.name}: general.alignment {value!r} is not a power of two")
                alignment = value
        tensors = []
        for _ in range(n_tensors):
            name = cursor.string("a tensor name")
            n_dims = cursor.scalar("I")
            if not 1 <= n_dims <= _MAX_DIMS:
                raise ConfigError(f"GGUF file {path.name}: tensor {name!r} has {n_dims} dimensions; expected 1 to 4")
            dims = [cursor.scalar("Q") for _ in range(n_dims)]
            kind = cursor.scalar("I")
            offset = cursor.scalar("Q")
            try:
                block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
            except (ValueError, KeyError):
                raise ConfigError(f"GGUF file {path.name}: tensor {name!r} has unknown type {kind}") from None
            if dims[0] % block:
                raise ConfigError(
                    f"GGUF file {path.name}: tensor {name!r} has rows of {dims[0]} values, not a multiple of its "
                    f"block of {block}"
                )
            tensors.append((name, offset, _product(dims) // block * block_bytes))
        data_start = -(-cursor.position // alignment) * alignment
        data_bytes = size - data_start
        for name, offset, nbytes in tensors:
            if offset % alignment or offset + nbytes > data_bytes:
                raise ConfigError(
                    f"GGUF file {path.name}: tensor {name!r} at offset {offset} with {nbytes} bytes does not lie "
                    f"(aligned to {alignment}) in the {max(data_bytes, 0)}-byte data section"
                )


def _product(dims: list[int]) -> int:
    total = 1
    for d in dims:
        total *= d
    return total


class _Cursor:
    """Reads little-endian values from a buffer, raising ConfigError for any read past its end."""

    def __init__(self, data, name: str) -> None:
        self.data, self.name, self.position = data, name, 0

    def take(self, n: int) -> bytes:
        if n > len(self.data) - self.position:
            raise ConfigError(
                f"GGUF file {self.name} is truncated: {n} bytes needed at offset {self.position}, "
                f"{len(self.data) - self.position} left"
            )
        chunk = self.data[self.position : self.position + n]
        self.position += n
        return chunk

    def scalar(self, code: str):
        size = struct.calcsize("<" + code)
        return struct.unpack("<" + code, self.take(size))[0]

    def room_for(self, count: int, each: int, what: str) -> None:
        if count * each > len(self.data) - self.position:
            raise ConfigError(
                f"GGUF file {self.name} claims {count} {what}, more than its {len(self.data) - self.position} "
                "remaining bytes can hold"
            )

    def string(self, what: str) -> str:
        length = self.scalar("Q")
        raw = self.take(length) if length <= len(self.data) - self.position else None
        if raw is None:
            raise ConfigError(
                f"GGUF file {self.name}: {what} of {length} bytes at offset {self.position} runs past the end"
            )
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"GGUF file {self.name}: {what} at offset {self.position} is not UTF-8") from None

    def value(self, kind: int, key: str, depth: int):
        """Return a scalar or string value; arrays are walked (bounded) and returned as None."""
        if kind in _SCALARS:
            return self.scalar(_SCALARS[kind])
        if kind == _STRING:
            self.string(f"the value of {key!r}")
            return None
        if kind == _ARRAY:
            if depth >= _MAX_ARRAY_NESTING:
                raise ConfigError(f"GGUF file {self.name}: {key!r} nests arrays more than {_MAX_ARRAY_NESTING} deep")
            element_kind, count = self.scalar("I"), self.scalar("Q")
            if element_kind in _SCALARS:
                self.take_checked(count * struct.calcsize("<" + _SCALARS[element_kind]), key)
                return None
            if element_kind not in (_STRING, _ARRAY):
                raise ConfigError(f"GGUF file {self.name}: {key!r} is an array of unknown type {element_kind}")
            self.room_for(count, 8, f"elements in {key!r}")
            if element_kind == _STRING:  # the token list: only lengths matter here, so skip the decoding
                self.skip_strings(count, key)
                return None
            for _ in range(count):
                self.value(element_kind, key, depth + 1)
            return None
        raise ConfigError(f"GGUF file {self.name}: metadata {key!r} has unknown value type {kind}")

    def skip_strings(self, count: int, key: str) -> None:
        position, end, unpack = self.position, len(self.data), struct.Struct("<Q").unpack_from
        for _ in range(count):
            if position + 8 > end:
                break
            position += 8 + unpack(self.data, position)[0]
        else:
            if position <= end:
                self.position = position
                return
        raise ConfigError(f"GGUF file {self.name}: the strings of {key!r} run past the end of the file")

    def take_checked(self, n: int, key: str) -> None:
        if n > len(self.data) - self.position:
            raise ConfigError(f"GGUF file {self.name}: the array {key!r} of {n} bytes runs past the end of the file")
        self.position += n
