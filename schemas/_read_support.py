"""What readers compiled by ``schemas._reader`` use at run time, and the schema form they are compiled from.

The generated code reads a one-byte varint from a table (``ZIGZAG``, ``LENGTH``) and calls the functions here
only for longer ones. Anything wrong with the data raises ``Corrupt`` (or an ``IndexError`` when it ends too
soon); the reader turns both into ``DecodeError``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

#: The zigzag value of a one-byte varint, ``None`` for a byte that continues.
ZIGZAG: tuple[int | None, ...] = tuple((b >> 1) ^ -(b & 1) if b < 0x80 else None for b in range(256))
#: A one-byte length (zigzag, not negative), or -1 when it is longer or negative.
LENGTH: tuple[int, ...] = tuple(b >> 1 if b < 0x80 and not b & 1 else -1 for b in range(256))
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: ``timedelta`` of 0 to 999 milliseconds.
MILLISECONDS = tuple(timedelta(milliseconds=ms) for ms in range(1000))
#: Seconds since the epoch -> that second as an aware UTC datetime, for the seconds met lately.
SECONDS: dict[int, datetime] = {}
_SECONDS_KEPT = 4096


def second(s: int) -> datetime:
    """The datetime ``s`` seconds after the epoch, kept in ``SECONDS``.

    A timestamp-millis is read as its second plus a ``MILLISECONDS`` entry: events met together are mostly
    from the same few seconds, and that costs about half of ``epoch + millisecond * n``."""
    value = _EPOCH + timedelta(seconds=s)
    if len(SECONDS) >= _SECONDS_KEPT:
        SECONDS.clear()
    SECONDS[s] = value
    return value


class Corrupt(ValueError):
    """The data does not fit the writer schema."""


class Unsupported(Exception):
    """The schemas use something readers are not compiled for: fastavro reads those."""


def read_long(data: bytes, pos: int) -> tuple[int, int]:
    """The long whose varint starts at ``pos`` (more than one byte), and the position after it.

    Unrolled up to 7 bytes (every millisecond timestamp until 6429): each step is a few bytecodes."""
    n = data[pos] & 0x7F
    b = data[pos + 1]
    if b < 0x80:
        n |= b << 7
        return (n >> 1) ^ -(n & 1), pos + 2
    n |= (b & 0x7F) << 7
    b = data[pos + 2]
    if b < 0x80:
        n |= b << 14
        return (n >> 1) ^ -(n & 1), pos + 3
    n |= (b & 0x7F) << 14
    b = data[pos + 3]
    if b < 0x80:
        n |= b << 21
        return (n >> 1) ^ -(n & 1), pos + 4
    n |= (b & 0x7F) << 21
    b = data[pos + 4]
    if b < 0x80:
        n |= b << 28
        return (n >> 1) ^ -(n & 1), pos + 5
    n |= (b & 0x7F) << 28
    b = data[pos + 5]
    if b < 0x80:
        n |= b << 35
        return (n >> 1) ^ -(n & 1), pos + 6
    n |= (b & 0x7F) << 35
    b = data[pos + 6]
    if b < 0x80:
        n |= b << 42
        return (n >> 1) ^ -(n & 1), pos + 7
    return _read_long_tail(data, pos, n | (b & 0x7F) << 42)


def _read_long_tail(data: bytes, start: int, n: int) -> tuple[int, int]:
    pos = start + 7
    for shift in (49, 56, 63):
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            if n >> 64:
                raise Corrupt(f"a varint beyond 64 bits at byte {start}")
            return (n >> 1) ^ -(n & 1), pos
    raise Corrupt(f"a varint longer than 10 bytes at byte {start}")


def read_int(data: bytes, pos: int) -> tuple[int, int]:
    """Like ``read_long``, for an Avro ``int``: 32 bits at most."""
    n, end = read_long(data, pos)
    if not _INT_MIN <= n <= _INT_MAX:
        raise Corrupt(f"{n} at byte {pos} does not fit an Avro int")
    return n, end


def read_length(data: bytes, pos: int) -> tuple[int, int]:
    """A string, bytes or block size that is not a one-byte varint; refuses negative sizes."""
    if data[pos] < 0x80:
        n, end = (data[pos] >> 1) ^ -(data[pos] & 1), pos + 1
    else:
        n, end = read_long(data, pos)
    if n < 0:
        raise Corrupt(f"negative length {n} at byte {pos}")
    return n, end


class Symbols(dict[int, Any]):
    """Writer enum index -> reader value; an index it lacks raises ``Corrupt`` naming the problem."""

    def __init__(self, mapping: dict[int, Any], writer_symbols: list[str], reader_name: str) -> None:
        super().__init__(mapping)
        self.writer_symbols = writer_symbols
        self.reader_name = reader_name

    def __missing__(self, index: int) -> Any:
        if 0 <= index < len(self.writer_symbols):
            symbol = self.writer_symbols[index]
            raise Corrupt(f"symbol {symbol} is not in the reader's enum {self.reader_name}")
        raise Corrupt(f"enum index {index} is out of range ({len(self.writer_symbols)} symbols)")


class Booleans(dict[int, bool]):
    """Byte -> bool; anything but 0 and 1 raises ``Corrupt``."""

    def __missing__(self, byte: int) -> bool:
        raise Corrupt(f"byte {byte:#04x} is not a boolean")


BOOLEANS = Booleans({0: False, 1: True})


def union_index_error(index: int, size: int) -> Corrupt:
    return Corrupt(f"union index {index} is out of range ({size} branches)")


def full_name(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def normalize(schema: Any, namespace: str | None, named: dict[str, Any]) -> Any:
    """``schema`` with names resolved: a primitive's name, a union's list, or a dict whose references to a
    named type are that type's own dict (so recursion is a cycle). ``Unsupported`` for logical types other
    than ``timestamp-millis`` (fastavro would convert them) and anything unknown."""
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return schema
        name = full_name(schema, namespace)
        if name not in named:
            raise Unsupported(f"unknown type {name}")
        return named[name]
    if isinstance(schema, list):
        return [normalize(branch, namespace, named) for branch in schema]
    kind = schema.get("type")
    logical = schema.get("logicalType")
    if logical is not None and not (logical == "timestamp-millis" and kind == "long"):
        raise Unsupported(f"logical type {logical}")
    if isinstance(kind, (dict, list)):
        return normalize(kind, namespace, named)
    if kind in PRIMITIVES:
        return kind
    if kind in NAMED:
        return _named(schema, namespace, named)
    if kind == "array":
        return {"type": "array", "items": normalize(schema["items"], namespace, named)}
    if kind == "map":
        return {"type": "map", "values": normalize(schema["values"], namespace, named)}
    raise Unsupported(f"type {kind!r}")


def _named(schema: dict[str, Any], namespace: str | None, named: dict[str, Any]) -> dict[str, Any]:
    name = full_name(schema["name"], schema.get("namespace", namespace))
    inner = name.rpartition(".")[0] or None
    node: dict[str, Any] = {
        "type": "record" if schema["type"] == "error" else schema["type"],
        "name": name,
        "aliases": [full_name(alias, inner) for alias in schema.get("aliases", [])],
    }
    named[name] = node
    if node["type"] == "enum":
        node["symbols"] = list(schema["symbols"])
        node["default"] = schema.get("default")
    elif node["type"] == "fixed":
        node["size"] = int(schema["size"])
    else:
        node["fields"] = [
            {
                **{key: field[key] for key in ("name", "default") if key in field},
                "aliases": list(field.get("aliases", [])),
                "type": normalize(field["type"], inner, named),
            }
            for field in schema["fields"]
        ]
    return node


def kind_of(node: Any) -> str:
    """``"union"``, a primitive's name, or the ``type`` of a dict node."""
    if isinstance(node, list):
        return "union"
    if isinstance(node, str):
        return node
    kind: str = node["type"]
    return kind


_PROMOTIONS = {
    ("int", "long"),
    ("int", "float"),
    ("int", "double"),
    ("long", "float"),
    ("long", "double"),
    ("float", "double"),
    ("string", "bytes"),
    ("bytes", "string"),
}


def matches(writer: Any, reader: Any) -> bool:
    """Whether data of ``writer`` can be read as ``reader`` (Avro's rule for picking a union branch)."""
    wk, rk = kind_of(writer), kind_of(reader)
    if wk == "union" or rk == "union":
        return False
    if wk in PRIMITIVES or rk in PRIMITIVES:
        return wk == rk or (wk, rk) in _PROMOTIONS
    if wk != rk:
        return False
    if wk == "array":
        return matches(writer["items"], reader["items"])
    if wk == "map":
        return matches(writer["values"], reader["values"])
    if wk == "fixed" and writer["size"] != reader["size"]:
        return False
    short = writer["name"].rpartition(".")[2]
    aliases = reader["aliases"]
    return bool(
        short == reader["name"].rpartition(".")[2]
        or writer["name"] in aliases
        or short in {alias.rpartition(".")[2] for alias in aliases}
    )
