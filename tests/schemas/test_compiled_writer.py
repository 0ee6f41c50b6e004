"""The compiled Avro writer writes exactly fastavro's bytes, refuses what does not fit, and steps aside for
schemas it does not compile (fastavro writes those)."""

from __future__ import annotations

import random
from datetime import datetime
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from fastavro import parse_schema

from kep.schemas import AvroRecord, EncodeError, Event, LocalSchemaRegistry, SingleObjectCodec, avro_schema
from kep.schemas._binding import dumper, plain_schema
from kep.schemas._plans import fastavro_writer
from kep.schemas._writer import compile_writer
from shop.orders import LineItem, OrderPlaced
from tests.schemas.conftest import SchemaDir, reference_body
from tests.schemas.everything import BOUNDARIES, Everything, random_everything

pytestmark = pytest.mark.unit

HEADER = b"\xc3\x01header"


def _by_fastavro(model: type[AvroRecord]) -> Any:
    schema = avro_schema(model)
    return fastavro_writer(parse_schema(plain_schema(schema), named_schemas={}), dumper(model))  # type: ignore[arg-type]


def test_every_type_is_written_exactly_as_fastavro_writes_it() -> None:
    compiled = compile_writer(avro_schema(Everything))
    assert compiled is not None
    reference = _by_fastavro(Everything)
    rng = random.Random(7)
    for _ in range(300):
        value = random_everything(rng)
        assert compiled(HEADER, value) == reference(HEADER, value), value


def test_every_int_and_long_boundary_is_written_as_fastavro_writes_it() -> None:
    compiled = compile_writer(avro_schema(Everything))
    assert compiled is not None
    reference = _by_fastavro(Everything)
    base = random_everything(random.Random(1))
    for number in BOUNDARIES:
        small = number if -(2**31) <= number < 2**31 else 0
        value = base.model_copy(update={"count": number, "small": small, "maybe_count": number})
        assert compiled(b"", value) == reference(b"", value), number


def test_the_shipped_events_are_written_as_fastavro_writes_them(order: OrderPlaced) -> None:
    from shop.samples import sample_events

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
    good = random_everything(random.Random(3))
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
