"""Damaged data through the compiled reader: every way a body can be wrong is a ``DecodeError`` keeping the
bytes, never another exception, and random damage either decodes or is a ``DecodeError``."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from kep.schemas import (
    AvroRecord,
    DecodeError,
    Int32,
    LocalSchemaRegistry,
    SingleObjectCodec,
    UnknownSchemaError,
    avro_schema,
)
from kep.schemas._binding import dumper
from kep.schemas._plans import event_reader
from kep.schemas._reader import compile_reader
from tests.schemas.conftest import reference_body
from tests.schemas.everything import Colour, Everything, random_everything
from tests.schemas.readers import (
    Evolved,
    _canonical,
    evolved_reader_schema,
    evolved_writer_schema,
    fastavro_reader,
    random_writer_record,
    write,
)

pytestmark = pytest.mark.unit


class Small(AvroRecord):
    """One field of each kind that can be damaged on its own."""

    flag: bool
    small: Int32
    colour: Colour
    maybe: int | None
    text: str
    at: datetime


SMALL = {
    "type": "record",
    "name": "Small",
    "fields": [
        {"name": "flag", "type": "boolean"},
        {"name": "small", "type": "int"},
        {"name": "colour", "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN", "BLUE"]}},
        {"name": "maybe", "type": ["null", "long"]},
        {"name": "text", "type": "string"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}
#: flag true, small 1, GREEN, maybe 3, text "ab", at 1 ms: every field one byte, but the string.
GOOD = bytes([0x01, 0x02, 0x02, 0x02, 0x06, 0x04]) + b"ab" + bytes([0x02])


def _read_small() -> Callable[[bytes], Any]:
    read = compile_reader(SMALL, SMALL, Small, 0, "kep.tests.Small")
    assert read is not None
    return read


def test_the_undamaged_record_reads() -> None:
    small = _read_small()(GOOD)
    assert (small.flag, small.small, small.colour, small.maybe, small.text) == (
        True,
        1,
        Colour.GREEN,
        3,
        "ab",
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x02" + GOOD[1:], "byte 0x02 is not a boolean"),
        (GOOD[:1] + b"\x80\x80\x80\x80\x10" + GOOD[2:], r"2147483648 at byte 1 does not fit an Avro int"),
        (GOOD[:2] + b"\x06" + GOOD[3:], "enum index 3 is out of range"),
        (GOOD[:2] + b"\x01" + GOOD[3:], "enum index -1 is out of range"),
        (GOOD[:3] + b"\x04" + GOOD[4:], r"union index 2 is out of range \(2 branches\)"),
        (GOOD[:3] + b"\x01" + GOOD[4:], "union index -1 is out of range"),
        (GOOD[:5] + b"\x04\xff\xfe" + GOOD[8:], "UnicodeDecodeError"),
        (GOOD[:5] + b"\x03" + GOOD[6:], "negative length -2 at byte 5"),
        (GOOD[:5] + b"\x80" * 10 + b"\x00" + GOOD[6:], "varint longer than 10 bytes"),
        (GOOD[:5] + b"\x40ab\x02", "the data ends inside the record"),
        (GOOD[:-1] + b"\xff" * 7 + b"\x7f", "OverflowError"),
        (GOOD[:-1], "the data ends inside the record"),
        (GOOD[:4], "the data ends inside the record"),
        (b"", "the data ends inside the record"),
        (GOOD + b"\x00", r"1 unexpected bytes after the kep\.tests\.Small record \(10 bytes\)"),
    ],
    ids=[
        "boolean",
        "int-beyond-32-bits",
        "enum-index",
        "negative-enum-index",
        "union-index",
        "negative-union-index",
        "bad-utf8",
        "negative-length",
        "long-varint",
        "string-past-the-end",
        "timestamp-out-of-range",
        "truncated",
        "truncated-at-a-field",
        "empty",
        "trailing",
    ],
)
def test_damaged_bodies_are_decode_errors_that_keep_the_bytes(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message) as caught:
        _read_small()(data)
    assert caught.value.raw == data
    assert str(caught.value).startswith(("corrupt or truncated kep.tests.Small body", "1 unexpected bytes"))


def test_a_symbol_the_reader_lacks_is_a_decode_error_naming_it() -> None:
    colour = {"type": "enum", "name": "Colour", "symbols": ["RED", "PURPLE", "GREEN", "BLUE"]}
    writer = {
        **SMALL,
        "fields": [*SMALL["fields"][:2], {"name": "colour", "type": colour}, *SMALL["fields"][3:]],
    }
    read = compile_reader(writer, SMALL, Small, 0, "kep.tests.Small")
    assert read is not None
    assert read(GOOD[:2] + b"\x04" + GOOD[3:]).colour is Colour.GREEN
    with pytest.raises(DecodeError, match="symbol PURPLE is not in the reader's enum Colour"):
        read(GOOD)


def test_a_union_branch_the_reader_lacks_is_a_decode_error() -> None:
    fields = [
        *SMALL["fields"][:3],
        {"name": "maybe", "type": ["null", "long", "string"]},
        *SMALL["fields"][4:],
    ]
    read = compile_reader({**SMALL, "fields": fields}, SMALL, Small, 0, "kep.tests.Small")
    assert read is not None
    assert read(GOOD).maybe == 3
    with pytest.raises(DecodeError, match="union branch 2: string is not in the reader's union"):
        read(GOOD[:3] + b"\x04\x02x" + GOOD[5:])


def test_a_timestamp_out_of_range_is_a_decode_error_on_the_fastavro_path_too() -> None:
    registry = LocalSchemaRegistry.default()
    v1 = registry.get("kep.orders.OrderPlaced", 1)
    data = b"\xc3\x01" + v1.fingerprint + b"\x02a" + b"\xff" * 7 + b"\x7f" + b"\x02b\x02c\x00\x00\x06EUR"
    for compiled in (True, False):
        read = event_reader(registry, v1.name, v1.schema, "test", data, 10, compiled=compiled)
        with pytest.raises(DecodeError, match="OverflowError") as caught:
            read(data)
        assert caught.value.raw == data


def _damaged(rng: random.Random, data: bytes, start: int) -> bytes:
    """``data`` cut short, with a byte changed, inserted or removed (from ``start`` on), or several changed."""
    at = rng.randrange(start, len(data) + 1)
    how = rng.randrange(5)
    if how == 0:
        return data[:at]
    if how == 1 and at < len(data):
        return data[:at] + bytes([rng.randrange(256)]) + data[at + 1 :]
    if how == 2:
        return data[:at] + bytes([rng.randrange(256)]) + data[at:]
    if how == 3:
        return data[:at] + data[at + 1 :]
    damaged = bytearray(data)
    for _ in range(3):
        damaged[rng.randrange(start, len(data))] = rng.randrange(256)
    return bytes(damaged)


def _decodes_or_raises_decode_error(read: Callable[[bytes], Any], data: bytes, reference: Any = None) -> None:
    try:
        got = read(data)
    except DecodeError as exc:
        assert exc.raw == data
        return
    if reference is None:
        return
    try:
        expected = reference(data)
    except Exception:
        return  # the compiled reader reads a little more than fastavro: an undecoded string it skips
    assert _canonical(got) == _canonical(expected)


def test_random_damage_to_shipped_events_decodes_or_is_a_decode_error() -> None:
    from shop.samples import sample_events

    codec = SingleObjectCodec()
    registry = LocalSchemaRegistry.default()
    v1 = registry.get("kep.orders.OrderPlaced", 1)
    rng = random.Random(21)
    for event in sample_events(300, seed=8, kind="mixed"):
        data = codec.encode(event)
        if rng.random() < 0.3 and event.avro_name == v1.name:
            data = b"\xc3\x01" + v1.fingerprint + reference_body(v1.schema, event.model_dump())
        reference = event_reader(registry, event.avro_name, registry.by_fingerprint(data[2:10]).schema, "", data,
                                 10, compiled=False)  # fmt: skip
        for _ in range(10):
            _decodes_or_raises_decode_error(codec.decode, _damaged(rng, data, 10), reference)
        header = _damaged(rng, data, 0)
        try:
            codec.decode(header)
        except DecodeError as exc:  # UnknownSchemaError too, for a changed fingerprint
            assert exc.raw == header
            if header[:2] == data[:2] and len(header) >= 10 and header[2:10] != data[2:10]:
                assert isinstance(exc, UnknownSchemaError)


def test_every_truncation_of_a_shipped_event_is_a_decode_error() -> None:
    from shop.samples import sample_events

    codec = SingleObjectCodec()
    for event in sample_events(6, seed=9, kind="mixed"):
        data = codec.encode(event)
        for size in range(len(data)):
            with pytest.raises(DecodeError) as caught:
                codec.decode(data[:size])
            assert caught.value.raw == data[:size]


@pytest.mark.parametrize("model", [Everything, Evolved])
def test_random_damage_to_every_type_decodes_or_is_a_decode_error(model: type[AvroRecord]) -> None:
    rng = random.Random(22)
    if model is Everything:
        writer = reader = avro_schema(Everything)
        records = [dumper(Everything)(random_everything(rng)) for _ in range(40)]
    else:
        writer, reader = evolved_writer_schema(), evolved_reader_schema()
        records = [random_writer_record(rng) for _ in range(40)]
    read = compile_reader(writer, reader, model, 0, model.__name__)
    assert read is not None
    reference = fastavro_reader(writer, reader, model)
    for record in records:
        data = write(writer, record)
        for _ in range(25):
            _decodes_or_raises_decode_error(read, _damaged(rng, data, 0), reference)
