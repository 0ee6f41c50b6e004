"""The compiled Avro writer writes exactly fastavro's bytes, refuses what does not fit, and steps aside for
schemas it does not compile (fastavro writes those)."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from fastavro import parse_schema

from schemas import (
    AvroRecord,
    EncodeError,
    Event,
    Float32,
    Int32,
    LineItem,
    LocalSchemaRegistry,
    OrderPlaced,
    SingleObjectCodec,
    avro_schema,
)
from schemas._binding import dumper, plain_schema
from schemas._plans import fastavro_writer
from schemas._writer import compile_writer
from tests.schemas.conftest import SchemaDir, reference_body

pytestmark = pytest.mark.unit

HEADER = b"\xc3\x01header"
#: Around every varint length (7, 14, 21... bits) and the ends of Avro int and long.
BOUNDARIES = sorted(
    {
        sign * (base + delta)
        for bits in (0, 6, 7, 13, 14, 20, 21, 27, 28, 34, 35, 41, 42, 48, 49, 55, 56, 62)
        for base in (2**bits,)
        for delta in (-1, 0, 1)
        for sign in (1, -1)
    }
    | {0, 2**63 - 1, -(2**63), 2**31 - 1, -(2**31)}
)


class Colour(StrEnum):
    """A colour."""

    RED = "RED"
    GREEN = "GREEN"
    BLUE = "BLUE"


class Inner(AvroRecord):
    """A nested record."""

    label: str
    when: datetime | None = None


class Everything(AvroRecord):
    """Every type a model can use."""

    text: str
    blob: bytes
    flag: bool
    count: int
    small: Int32
    ratio: float
    single: Float32
    at: datetime
    colour: Colour
    inner: Inner
    items: list[Inner]
    tags: dict[str, int]
    grid: list[list[int]]
    by_name: dict[str, Inner]
    moments: list[datetime]
    maybe_text: str | None = None
    maybe_count: int | None = 5
    maybe_inner: Inner | None = None
    maybe_colour: Colour | None = None


def _text(rng: random.Random) -> str:
    size = rng.choice([0, 1, 63, 64, 8191, 8192, 9000])
    alphabet = "abcXYZ09-é€𝄞"
    return "".join(rng.choice(alphabet) for _ in range(min(size, 50))) * max(1, size // 50)


def _when(rng: random.Random) -> datetime:
    millis = rng.choice([0, 1, -1, 1_704_067_200_123, 2**41 + 7, 2**45, -(2**40)])
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)


def _inner(rng: random.Random) -> Inner:
    return Inner(label=_text(rng), when=rng.choice([None, _when(rng)]))


def _everything(rng: random.Random) -> Everything:
    return Everything(
        text=_text(rng),
        blob=bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 70, 9000]))),
        flag=rng.random() < 0.5,
        count=rng.choice(BOUNDARIES),
        small=rng.choice([b for b in BOUNDARIES if -(2**31) <= b < 2**31]),
        ratio=rng.choice([0.0, -0.0, 1.5, -1e300, math.inf, math.nan, 3, rng.random()]),
        single=rng.choice([0.0, 1.1, -2.5e38, 3.4028235e38, 3.4028236e38, 1e300, -1e300, math.nan]),
        at=_when(rng),
        colour=rng.choice(list(Colour)),
        inner=_inner(rng),
        items=[_inner(rng) for _ in range(rng.choice([0, 1, 3, 70]))],
        tags={_text(rng)[:5] + str(i): rng.choice(BOUNDARIES) for i in range(rng.choice([0, 2, 65]))},
        grid=[[rng.choice(BOUNDARIES) for _ in range(rng.choice([0, 2]))] for _ in range(rng.choice([0, 3]))],
        by_name={str(i): _inner(rng) for i in range(rng.choice([0, 2]))},
        moments=[_when(rng) for _ in range(rng.choice([0, 2]))],
        maybe_text=rng.choice([None, "", _text(rng)]),
        maybe_count=rng.choice([None, 0, rng.choice(BOUNDARIES)]),
        maybe_inner=rng.choice([None, _inner(rng)]),
        maybe_colour=rng.choice([None, *Colour]),
    )


def _by_fastavro(model: type[AvroRecord]) -> Any:
    schema = avro_schema(model)
    return fastavro_writer(parse_schema(plain_schema(schema), named_schemas={}), dumper(model))  # type: ignore[arg-type]


def test_every_type_is_written_exactly_as_fastavro_writes_it() -> None:
    compiled = compile_writer(avro_schema(Everything))
    assert compiled is not None
    reference = _by_fastavro(Everything)
    rng = random.Random(7)
    for _ in range(300):
        value = _everything(rng)
        assert compiled(HEADER, value) == reference(HEADER, value), value


def test_every_int_and_long_boundary_is_written_as_fastavro_writes_it() -> None:
    compiled = compile_writer(avro_schema(Everything))
    assert compiled is not None
    reference = _by_fastavro(Everything)
    base = _everything(random.Random(1))
    for number in BOUNDARIES:
        small = number if -(2**31) <= number < 2**31 else 0
        value = base.model_copy(update={"count": number, "small": small, "maybe_count": number})
        assert compiled(b"", value) == reference(b"", value), number


def test_the_shipped_events_are_written_as_fastavro_writes_them(order: OrderPlaced) -> None:
    from producers.sample import sample_events

    codec = SingleObjectCodec()
    newest = LocalSchemaRegistry.default().latest("kep.orders.OrderPlaced")
    for event in [order, *sample_events(500, kind="mixed")]:
        version = LocalSchemaRegistry.default().latest(event.avro_name)
        data = codec.encode(event)
        assert data[10:] == reference_body(version.schema, event.model_dump()), event
    assert codec.encode(order)[2:10] == newest.fingerprint


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("count", "lots", "a str for a long"),
        ("count", 1.5, "a float for a long"),
        ("count", 2**63, "beyond a long"),
        ("small", 2**31, "beyond an int"),
        ("flag", 1, "not a bool"),
        ("text", b"bytes", "bytes for a string"),
        ("blob", "text", "a str for bytes"),
        ("at", datetime(2024, 1, 1), "a naive datetime"),
        ("colour", "RED", "a str for an enum"),
        ("items", [{"label": "x"}], "a dict for a record"),
        ("maybe_count", "x", "a str for an optional long"),
    ],
)
def test_data_that_does_not_fit_is_refused(field: str, value: object, why: str) -> None:
    compiled = compile_writer(avro_schema(Everything))
    assert compiled is not None
    good = _everything(random.Random(3))
    bad = Everything.model_construct(**{**good.__dict__, field: value})
    with pytest.raises((TypeError, AttributeError, OverflowError, ValueError, KeyError)):
        compiled(b"", bad)


def test_an_int32_field_out_of_range_is_an_encode_error(order: OrderPlaced) -> None:
    items = [LineItem.model_construct(sku="A", quantity=2**31, unit_price_cents=1)]
    unchecked = OrderPlaced.model_construct(**{**order.__dict__, "items": items})
    with pytest.raises(
        EncodeError, match=rf"cannot encode kep\.orders\.OrderPlaced event '{order.event_id}'"
    ):
        SingleObjectCodec().encode(unchecked)


def test_a_recursive_record_refers_to_itself_by_name() -> None:
    schema = {
        "type": "record",
        "name": "Node",
        "namespace": "kep.tests",
        "fields": [
            {"name": "value", "type": "long"},
            {"name": "children", "type": {"type": "array", "items": "kep.tests.Node"}},
            {"name": "parent", "type": ["null", "Node"]},
        ],
    }
    compiled = compile_writer(schema)
    assert compiled is not None
    leaf = {"value": -2, "children": [], "parent": None}
    tree = {"value": 1, "children": [leaf, {**leaf, "value": 300, "parent": leaf}], "parent": None}
    assert compiled(b"", _objects(tree)) == reference_body(schema, tree)


def _objects(data: Any) -> Any:
    """Dicts as objects with a ``__dict__``, as models are."""
    if isinstance(data, dict):
        return SimpleNamespace(**{key: _objects(value) for key, value in data.items()})
    if isinstance(data, list):
        return [_objects(item) for item in data]
    return data


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "record", "name": "A", "fields": [{"name": "x", "type": ["long", "string"]}]},
        {"type": "record", "name": "A", "fields": [{"name": "x", "type": ["null", "long", "string"]}]},
        {
            "type": "record",
            "name": "A",
            "fields": [{"name": "x", "type": {"type": "fixed", "name": "F", "size": 2}}],
        },
        {
            "type": "record",
            "name": "A",
            "fields": [{"name": "x", "type": {"type": "string", "logicalType": "uuid"}}],
        },
    ],
    ids=["union-of-two-types", "union-of-three", "fixed", "other-logical-type"],
)
def test_schemas_it_does_not_compile_get_none(schema: dict[str, Any]) -> None:
    assert compile_writer(schema) is None


class Either(Event):
    """An event with a union the compiled writer leaves to fastavro."""

    avro_name: ClassVar[str] = "kep.tests.Either"

    value: int | str


def test_events_it_does_not_compile_are_written_by_fastavro(schema_dir: SchemaDir) -> None:
    registry = LocalSchemaRegistry(schema_dir({"kep.tests.Either.v1.avsc": avro_schema(Either)}))
    codec = SingleObjectCodec(registry)
    for event in (Either(value=3), Either(value="three")):
        data = codec.encode(event)
        assert data[10:] == reference_body(avro_schema(Either), event.model_dump())
        assert codec.decode(data) == event
