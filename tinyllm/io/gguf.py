"""Read a GGUF file (llama.cpp's format): its metadata and its tensors, dequantized to float32.

A GGUF file holds key/value metadata (architecture, sizes, tokenizer) and named tensors, many of
them quantized in blocks (Q4_1: 32 weights share a float16 scale and minimum, 4 bits each;
Q8_0: 32 weights share a scale, 8 bits each). We read it with the `gguf` package that llama.cpp
publishes, and dequantize with `gguf.quants.dequantize`, so every weight reaches tinyllm as a
float32 array.

Shapes: GGUF lists dimensions fastest-first (ggml's `ne`), the reader gives NumPy arrays in the
usual order, so a linear layer's weight comes back as (out_features, in_features), as in PyTorch.
"""

from __future__ import annotations

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
    try:
        reader = gguf.GGUFReader(path, "r")
    except (ValueError, OSError, IndexError, KeyError) as error:
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
    return GGUFFile(path, metadata, tensor_types, reader)
