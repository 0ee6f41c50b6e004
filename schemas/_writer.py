"""``compile_writer``: an Avro binary writer compiled once per event schema, for ``encode``'s hot path.

fastavro's ``schemaless_writer`` is generic: every call sets up an encoder and walks the schema, dispatching
on each field's type as it goes, and it reads dicts, so a model must first be converted into one. A writer
compiled here walks the schema once, into one closure per field that reads the model's ``__dict__`` and
appends bytes; varints come from tables. An ``OrderPlaced`` takes about two thirds of the time fastavro takes
for a ready dict, and about 60% of the old path (model to dict, then fastavro).

The bytes are exactly fastavro's for every event that passed validation (a test compares the two on each
type models use). Data that does not fit the schema (``model_construct`` skips validation) raises, and the
codec turns that into ``EncodeError``; a few things fastavro writes anyway are refused here (a float for a
``long``, a non-bool for a ``boolean``, an ``int`` outside 32 bits). A schema using something not compiled
here (``fixed``, a union of several non-null branches, a logical type other than ``timestamp-millis``) gets
``None``, and the codec writes it with fastavro.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

Append = Callable[[bytes], object]
#: Appends the Avro binary form of one value.
Write = Callable[[Append, Any], None]
#: ``write(header, event) -> header + Avro body``.
RecordWriter = Callable[[bytes, Any], bytes]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_GROUP = 1 << 14  # zigzag values in one table entry: two varint bytes, 14 bits
_pack_float = struct.Struct("<f").pack
_pack_double = struct.Struct("<d").pack


class _Unsupported(Exception):
    """The schema uses something this module does not compile."""


@functools.cache
def _tables() -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """``last[z]``: the varint of ``z`` < 2**14; ``inner[z]``: 14 bits inside a longer varint (both continue).

    Built on first use (about 1.5 MB), so processes that only decode never pay for them.
    """
    last = tuple(bytes((z,)) if z < 0x80 else bytes((z & 0x7F | 0x80, z >> 7)) for z in range(_GROUP))
    inner = tuple(bytes((z & 0x7F | 0x80, z >> 7 & 0x7F | 0x80)) for z in range(_GROUP))
    return last, inner


def _varint_function() -> Callable[[int], bytes]:
    last, inner = _tables()

    def varint(n: int) -> bytes:
        """The zigzag varint of a ``long``: Avro's int and long encoding."""
        z = (n << 1) ^ (n >> 63)
        if 0 <= z < 0x4000:
            return last[z]
        if 0 <= z < 0x10000000:
            return inner[z & 0x3FFF] + last[z >> 14]
        if 0 <= z < 0x40000000000:
            return inner[z & 0x3FFF] + inner[z >> 14 & 0x3FFF] + last[z >> 28]
        return _long_varint(n)

    return varint


def _long_varint(n: int) -> bytes:
    if not _LONG_MIN <= n <= _LONG_MAX:
        raise OverflowError(f"{n} does not fit an Avro long")
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append(z & 0x7F | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def compile_writer(schema: dict[str, Any]) -> RecordWriter | None:
    """The writer of records of ``schema`` (an ``.avsc`` record, logical types included), or ``None``."""
    compiler = _Compiler(_varint_function())
    try:
        fields = compiler.fields(schema, None)
    except _Unsupported:
        return None

    def write(header: bytes, obj: Any) -> bytes:
        parts = [header]
        append = parts.append
        values = obj.__dict__
        for name, write_field in fields:
            write_field(append, values[name])
        return b"".join(parts)

    return write


class _Compiler:
    """Turns a schema into closures; remembers named types so references (and recursion) resolve."""

    def __init__(self, varint: Callable[[int], bytes]) -> None:
        self.varint = varint
        self.named: dict[str, Write] = {}
        self.primitives: dict[str, Write] = _primitives(varint)

    def type(self, schema: Any, namespace: str | None) -> Write:
        if isinstance(schema, str):
            primitive = self.primitives.get(schema)
            if primitive is not None:
                return primitive
            name = _full_name(schema, namespace)
            if name not in self.named:
                raise _Unsupported(f"unknown type {name}")
            return self.named[name]
        if isinstance(schema, list):
            return self._union(schema, namespace)
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if logical is not None:
            if logical == "timestamp-millis" and kind == "long":
                return _timestamp_millis(self.varint)
            raise _Unsupported(f"logical type {logical}")
        if kind == "record":
            return self._nested_record(schema, namespace)
        if kind == "enum":
            return self._enum(schema, namespace)
        if kind == "array":
            return _array(self.type(schema["items"], namespace), self.varint)
        if kind == "map":
            return _map(self.type(schema["values"], namespace), self.primitives["string"], self.varint)
        if isinstance(kind, str) and kind in self.primitives:
            return self.primitives[kind]
        raise _Unsupported(f"type {kind!r}")

    def fields(self, schema: dict[str, Any], namespace: str | None) -> list[tuple[str, Write]]:
        """The (field name, writer) pairs of a record, which is registered under its name first."""
        if schema.get("type") != "record":
            raise _Unsupported("not a record")
        name = _full_name(schema["name"], schema.get("namespace", namespace))
        fields: list[tuple[str, Write]] = []
        self.named[name] = _record(fields)
        inner = name.rpartition(".")[0] or None
        fields.extend((field["name"], self.type(field["type"], inner)) for field in schema["fields"])
        return fields

    def _nested_record(self, schema: dict[str, Any], namespace: str | None) -> Write:
        name = _full_name(schema["name"], schema.get("namespace", namespace))
        self.fields(schema, namespace)
        return self.named[name]

    def _enum(self, schema: dict[str, Any], namespace: str | None) -> Write:
        indexes = {symbol: self.varint(i) for i, symbol in enumerate(schema["symbols"])}
        write = _enum(indexes)
        self.named[_full_name(schema["name"], schema.get("namespace", namespace))] = write
        return write

    def _union(self, branches: list[Any], namespace: str | None) -> Write:
        others = [i for i, branch in enumerate(branches) if branch != "null"]
        if len(branches) != 2 or len(others) != 1:
            raise _Unsupported("a union other than null and one type")
        (value_at,) = others
        value = self.type(branches[value_at], namespace)
        return _optional(value, self.varint(1 - value_at), self.varint(value_at))


def _full_name(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _record(fields: list[tuple[str, Write]]) -> Write:
    def write(append: Append, obj: Any) -> None:
        values = obj.__dict__
        for name, write_field in fields:
            write_field(append, values[name])

    return write


def _primitives(varint: Callable[[int], bytes]) -> dict[str, Write]:
    last = _tables()[0]

    def write_string(append: Append, value: str) -> None:
        data = value.encode()
        size = len(data)
        append(last[size << 1] if size < 0x2000 else varint(size))
        append(data)

    def write_bytes(append: Append, value: bytes) -> None:
        size = len(value)
        append(last[size << 1] if size < 0x2000 else varint(size))
        append(value)

    def write_long(append: Append, value: int) -> None:
        append(varint(value))

    def write_int(append: Append, value: int) -> None:
        if not _INT_MIN <= value <= _INT_MAX:
            raise OverflowError(f"{value} does not fit an Avro int")
        append(varint(value))

    return {
        "string": write_string,
        "bytes": write_bytes,
        "long": write_long,
        "int": write_int,
        "boolean": _write_boolean,
        "double": _write_double,
        "float": _write_float,
        "null": _write_null,
    }


def _write_boolean(append: Append, value: bool) -> None:
    if value is True:
        append(b"\x01")
    elif value is False:
        append(b"\x00")
    else:
        raise TypeError(f"{value!r} is not a bool")


def _write_double(append: Append, value: float) -> None:
    append(_pack_double(value))


def _write_float(append: Append, value: float) -> None:
    try:
        append(_pack_float(value))
    except OverflowError:  # beyond float32: infinity, as a C cast (and fastavro) gives
        append(_pack_float(math.copysign(math.inf, value)))


def _write_null(append: Append, value: None) -> None:
    if value is not None:
        raise TypeError(f"{value!r} is not None")


def _timestamp_millis(varint: Callable[[int], bytes]) -> Write:
    def write(append: Append, value: datetime) -> None:
        append(varint((value - _EPOCH) // _MILLISECOND))

    return write


def _enum(indexes: dict[str, bytes]) -> Write:
    def write(append: Append, member: Any) -> None:
        append(indexes[member.value])

    return write


def _array(item: Write, varint: Callable[[int], bytes]) -> Write:
    def write(append: Append, items: list[Any]) -> None:
        if items:
            append(varint(len(items)))
            for value in items:
                item(append, value)
        append(b"\x00")

    return write


def _map(value: Write, key: Write, varint: Callable[[int], bytes]) -> Write:
    def write(append: Append, mapping: dict[str, Any]) -> None:
        if mapping:
            append(varint(len(mapping)))
            for name, entry in mapping.items():
                key(append, name)
                value(append, entry)
        append(b"\x00")

    return write


def _optional(value: Write, null_tag: bytes, value_tag: bytes) -> Write:
    def write(append: Append, data: Any) -> None:
        if data is None:
            append(null_tag)
        else:
            append(value_tag)
            value(append, data)

    return write
