"""What readers compiled by ``schemas._reader`` call at run time.

The generated code reads one- and two-byte varints itself (``ZIGZAG``, ``LENGTH``) and calls the functions here
for longer ones. Data that does not fit raises ``Corrupt`` (or ``IndexError`` / ``struct.error`` when it ends
too soon); the reader turns all of them into ``DecodeError``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

#: The zigzag value of a one-byte varint; ``None`` for a byte that continues.
ZIGZAG: tuple[int | None, ...] = tuple((b >> 1) ^ -(b & 1) if b < 0x80 else None for b in range(256))
#: A one-byte length (zigzag, not negative); -1 when it is longer or negative.
LENGTH: tuple[int, ...] = tuple(b >> 1 if b < 0x80 and not b & 1 else -1 for b in range(256))
#: ``timedelta`` of 0 to 999 milliseconds.
MILLISECONDS: tuple[timedelta, ...] = tuple(timedelta(milliseconds=ms) for ms in range(1000))
#: Seconds since the epoch -> that second as an aware UTC datetime, for the seconds met lately.
SECONDS: dict[int, datetime] = {}
_SECONDS_KEPT = 4096
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_SECOND = timedelta(seconds=1)
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1

_BASE = BaseModel.__dict__
#: Each slot's own setter: what ``_binding.builder`` sets, without ``object.__setattr__``'s name lookup.
set_dict = _BASE["__dict__"].__set__
set_fields = _BASE["__pydantic_fields_set__"].__set__
set_extra = _BASE["__pydantic_extra__"].__set__
set_private = _BASE["__pydantic_private__"].__set__


class Corrupt(ValueError):
    """The data does not fit the writer schema."""


def second(s: int) -> datetime:
    """The datetime ``s`` seconds after the epoch, kept in ``SECONDS``.

    A ``timestamp-millis`` is read as its second plus a ``MILLISECONDS`` entry: events read together mostly
    come from a few seconds, and that costs about half of ``epoch + millisecond * n``."""
    value = _EPOCH + _ONE_SECOND * s  # cheaper than timedelta(seconds=s)
    if len(SECONDS) >= _SECONDS_KEPT:
        SECONDS.clear()
    SECONDS[s] = value
    return value


def build(model: type[BaseModel], values: dict[str, Any]) -> Any:
    """A ``model`` holding ``values`` (all its fields, in order), built as the generated code builds it."""
    obj = object.__new__(model)
    set_dict(obj, values)
    set_fields(obj, set(model.model_fields))
    set_extra(obj, None)
    set_private(obj, None)
    return obj


def read_long(data: bytes, pos: int) -> tuple[int, int]:
    """The long whose varint starts at ``pos`` (more than one byte long), and the position after it.

    Unrolled to 7 bytes (every millisecond timestamp until the year 6429): each byte is a few bytecodes."""
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
    """A string, bytes or block size that is not a one-byte varint; negative sizes are ``Corrupt``."""
    first = data[pos]
    n, end = ((first >> 1) ^ -(first & 1), pos + 1) if first < 0x80 else read_long(data, pos)
    if n < 0:
        raise Corrupt(f"negative length {n} at byte {pos}")
    return n, end


class Symbols(dict[int, Any]):
    """Writer enum index -> reader value; an index it lacks raises ``Corrupt`` saying why."""

    def __init__(self, mapping: dict[int, Any], writer_symbols: list[str], reader_name: str) -> None:
        super().__init__(mapping)
        self.writer_symbols = writer_symbols
        self.reader_name = reader_name

    def __missing__(self, index: int) -> Any:
        if 0 <= index < len(self.writer_symbols):
            symbol = self.writer_symbols[index]
            raise Corrupt(f"symbol {symbol} is not in the reader's enum {self.reader_name}")
        raise Corrupt(f"enum index {index} is out of range ({len(self.writer_symbols)} symbols)")


class _Booleans(dict[int, bool]):
    def __missing__(self, byte: int) -> bool:
        raise Corrupt(f"byte {byte:#04x} is not a boolean")


#: Byte -> bool; anything but 0 and 1 raises ``Corrupt``.
BOOLEANS = _Booleans({0: False, 1: True})


def union_index_error(index: int, size: int) -> Corrupt:
    return Corrupt(f"union index {index} is out of range ({size} branches)")
