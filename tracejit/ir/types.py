"""IR types: tensors (dtype, shape with int or symbolic dims, device), scalars, lists, tuples.

Types are immutable and compare by value; `str(t)` is the text form the parser reads back.

    >>> from tracejit import dtypes
    >>> str(TensorType(dtypes.float32, ("N", 784)))
    'Float(N, 784)'
    >>> str(ListType(IntType()))
    'List[int]'
"""

from __future__ import annotations

from dataclasses import dataclass

from tracejit import dtypes

# TorchScript's scalar-type names, so the text reads like `torch.jit` output.
DTYPE_TO_NAME = {
    dtypes.float32: "Float",
    dtypes.float64: "Double",
    dtypes.float16: "Half",
    dtypes.int64: "Long",
    dtypes.int32: "Int",
    dtypes.int16: "Short",
    dtypes.int8: "Char",
    dtypes.uint8: "Byte",
    dtypes.bool_: "Bool",
}
NAME_TO_DTYPE = {v: k for k, v in DTYPE_TO_NAME.items()}


class Type:
    """Base class of IR types."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class TensorType(Type):
    """A tensor; `dtype`/`shape`/`device` may be None when unknown.

    `shape` is a tuple of ints and symbol strings ('N'); None prints as `Float(*)`.
    A device other than the default CPU prints as `Float(2, device=cuda:0)`.
    """

    dtype: object = None
    shape: tuple | None = None
    device: object = None

    def __post_init__(self):
        if self.shape is not None:
            shape = tuple(int(d) if not isinstance(d, str) else d for d in self.shape)
            for d in shape:
                # Symbols must be identifiers so the text form stays parseable (`N`, `batch_1`).
                if isinstance(d, str) and not (d.isidentifier() and d.isascii() and d != "device"):
                    raise ValueError(f"symbolic dim {d!r} must be an ASCII identifier other than 'device'")
            object.__setattr__(self, "shape", shape)

    def __str__(self):
        if self.dtype is None and self.shape is None and self.device is None:
            return "Tensor"
        name = DTYPE_TO_NAME[self.dtype] if self.dtype is not None else "Tensor"
        parts = ["*"] if self.shape is None else [str(d) for d in self.shape]
        if self.device is not None and str(self.device) not in ("cpu", "cpu:0"):
            parts.append(f"device={self.device}")
        return f"{name}({', '.join(parts)})"


@dataclass(frozen=True, slots=True)
class IntType(Type):
    def __str__(self):
        return "int"


@dataclass(frozen=True, slots=True)
class FloatType(Type):
    def __str__(self):
        return "float"


@dataclass(frozen=True, slots=True)
class BoolType(Type):
    def __str__(self):
        return "bool"


@dataclass(frozen=True, slots=True)
class StrType(Type):
    def __str__(self):
        return "str"


@dataclass(frozen=True, slots=True)
class NoneType(Type):
    def __str__(self):
        return "NoneType"


@dataclass(frozen=True, slots=True)
class ListType(Type):
    elem: Type

    def __str__(self):
        return f"List[{self.elem}]"


@dataclass(frozen=True, slots=True)
class TupleType(Type):
    elems: tuple

    def __post_init__(self):
        object.__setattr__(self, "elems", tuple(self.elems))

    def __str__(self):
        return f"Tuple[{', '.join(str(e) for e in self.elems)}]"


SCALAR_TYPES = {"int": IntType(), "float": FloatType(), "bool": BoolType(), "str": StrType(), "NoneType": NoneType()}
