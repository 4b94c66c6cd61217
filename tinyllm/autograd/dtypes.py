"""dtypes and devices as objects, as in PyTorch: `tl.float32`, `tl.device("cuda:0")`.

Both are `str` subclasses: `tl.float32 == "float32"` and `t.device == "cpu"` hold, so code that
names dtypes and devices by strings keeps working, and they cost nothing to compare or hash.
"""

from __future__ import annotations

from tinyllm.backend import FLOAT_DTYPES


class DType(str):
    """A dtype: its name is the string ("float32"); tl.float32, tl.int64, ... are the instances."""

    __slots__ = ()

    @property
    def is_floating_point(self) -> bool:
        return self in FLOAT_DTYPES

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return _ITEMSIZES[str(self)]

    def __repr__(self) -> str:
        return f"tinyllm.{str(self)}"


_ITEMSIZES = {
    "float16": 2, "float32": 4, "float64": 8, "int8": 1, "int16": 2, "int32": 4, "int64": 8, "uint8": 1, "bool": 1,
}  # fmt: skip
DTYPES = {name: DType(name) for name in _ITEMSIZES}


class device(str):  # noqa: N801 - named as in PyTorch
    """A device: "cpu", "cuda", "cuda:0" or "strict"; `.type` is the kind, `.index` the number."""

    __slots__ = ()

    def __new__(cls, type: str, index: int | None = None) -> device:  # noqa: A002 - PyTorch's name
        name = str(type) if index is None else f"{type}:{index}"
        return super().__new__(cls, name)

    @property
    def type(self) -> str:
        return str(self).split(":")[0]

    @property
    def index(self) -> int | None:
        _, _, number = str(self).partition(":")
        return int(number) if number else None

    def __repr__(self) -> str:
        return f"device(type={self.type!r}" + (f", index={self.index})" if self.index is not None else ")")
