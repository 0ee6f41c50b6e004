"""The models and the shipped .avsc files cannot drift apart."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import ClassVar

import pytest
from fastavro import parse_schema
from pydantic import Field, ValidationError

from kep.schemas import (
    AvroRecord,
    Event,
    Float32,
    Int32,
    LocalSchemaRegistry,
    OrderPlaced,
    SchemaError,
    avro_schema,
    event_type_for,
    event_types,
    schema_drift,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", LocalSchemaRegistry.default().names())
def test_newest_shipped_schema_is_exactly_what_the_model_implies(name: str) -> None:
    newest = LocalSchemaRegistry.default().latest(name)
    assert avro_schema(event_type_for(name)) == newest.schema, f"{newest.path} and the model have drifted"


def test_every_shipped_schema_has_a_model_and_every_shipped_model_a_schema() -> None:
    shipped_models = {
        name
        for name, model in event_types().items()
        if model.__module__ in ("kep.schemas.orders", "kep.schemas.batches")
    }
    assert set(LocalSchemaRegistry.default().names()) == shipped_models


def test_a_field_added_to_the_model_only_is_drift() -> None:
    class OrderPlacedPlus(OrderPlaced):
        avro_name: ClassVar[str] = "kep.tests.OrderPlacedPlus"
        coupon: str | None = None

    newest = LocalSchemaRegistry.default().latest("kep.orders.OrderPlaced")
    schema = {**newest.schema, "name": "OrderPlacedPlus", "namespace": "kep.tests"}
    assert schema_drift(OrderPlacedPlus, schema) == "its fields or types differ from the model's"
    assert schema_drift(OrderPlaced, newest.schema) is None


def test_a_field_added_to_the_schema_only_is_drift() -> None:
    newest = LocalSchemaRegistry.default().latest("kep.orders.OrderPlaced")
    extra = {"name": "coupon", "type": ["null", "string"], "default": None}
    assert (
        schema_drift(OrderPlaced, {**newest.schema, "fields": [*newest.schema["fields"], extra]}) is not None
    )


def test_a_changed_doc_or_default_is_drift_too() -> None:
    newest = LocalSchemaRegistry.default().latest("kep.orders.OrderPlaced")
    fields = [dict(f, default="store") if f["name"] == "channel" else f for f in newest.schema["fields"]]
    assert schema_drift(OrderPlaced, {**newest.schema, "fields": fields}) == (
        "its docs or defaults differ from the model's"
    )


class Colour(Enum):
    """A colour."""

    RED = "RED"
    BLUE = "BLUE"


class Part(AvroRecord):
    name: str


class Everything(Event):
    """Uses every supported type."""

    avro_name: ClassVar[str] = "kep.tests.Everything"

    small: Int32 = 0
    ratio: Float32 = 0.5
    big: int = Field(7, description="A long.")
    flag: bool = True
    blob: bytes = b"\x00\xff"
    colour: Colour = Colour.BLUE
    when: datetime
    note: str | None = None
    fallback: str | None = "x"
    tags: dict[str, int] = Field(default_factory=dict)
    parts: list[Part]
    spare: Part | None = None
    more_colours: list[Colour] = Field(default_factory=list)


def test_generated_schema_covers_every_supported_type() -> None:
    schema = avro_schema(Everything)
    fields = {f["name"]: f for f in schema["fields"]}
    assert (schema["name"], schema["namespace"], schema["doc"]) == (
        "Everything",
        "kep.tests",
        "Uses every supported type.",
    )
    assert fields["small"] == {"name": "small", "type": "int", "default": 0}
    assert fields["ratio"]["type"] == "float"
    assert fields["big"] == {"name": "big", "type": "long", "doc": "A long.", "default": 7}
    assert fields["flag"]["type"] == "boolean"
    assert fields["blob"] == {"name": "blob", "type": "bytes", "default": "\u0000\u00ff"}
    assert fields["colour"] == {
        "name": "colour",
        "type": {"type": "enum", "name": "Colour", "doc": "A colour.", "symbols": ["RED", "BLUE"]},
        "default": "BLUE",
    }
    assert fields["when"]["type"] == {"type": "long", "logicalType": "timestamp-millis"}
    assert "default" not in fields["when"]
    assert fields["note"] == {"name": "note", "type": ["null", "string"], "default": None}
    assert fields["fallback"] == {"name": "fallback", "type": ["string", "null"], "default": "x"}
    assert fields["tags"] == {
        "name": "tags",
        "type": {"type": "map", "values": "long"},
    }  # factory: no default
    assert fields["parts"]["type"] == {
        "type": "array",
        "items": {"type": "record", "name": "Part", "fields": [{"name": "name", "type": "string"}]},
    }
    assert fields["spare"]["type"] == ["null", "Part"]  # defined once, then named
    assert fields["more_colours"]["type"] == {"type": "array", "items": "Colour"}
    parse_schema(schema)  # and it is valid Avro


def test_int32_keeps_the_32_bit_range_and_the_fields_own_bounds() -> None:
    class Bounded(AvroRecord):
        count: Int32 = Field(ge=1, le=10)
        loose: Int32 = Field(0, ge=-(2**40))
        plain: Int32 | None = None

    assert Bounded(count=1).count == 1
    for bad in (
        {"count": 0},
        {"count": 11},
        {"count": 1, "loose": -(2**31) - 1},
        {"count": 1, "plain": 2**31},
    ):
        with pytest.raises(ValidationError):
            Bounded.model_validate(bad)
    edge = Bounded(count=10, loose=-(2**31), plain=2**31 - 1)
    assert (edge.count, edge.loose, edge.plain) == (10, -(2**31), 2**31 - 1)
    assert [f["type"] for f in avro_schema(Bounded)["fields"]] == ["int", "int", ["null", "int"]]


def test_types_without_an_avro_form_are_refused() -> None:
    class Odd(Event):
        avro_name: ClassVar[str] = "kep.tests.Odd"
        pair: tuple[int, int]

    with pytest.raises(SchemaError, match=r"Odd\.pair: no Avro type"):
        avro_schema(Odd)

    class IntKeys(Event):
        avro_name: ClassVar[str] = "kep.tests.IntKeys"
        counts: dict[int, int]

    with pytest.raises(SchemaError, match=r"IntKeys\.counts: Avro map keys are strings"):
        avro_schema(IntKeys)
