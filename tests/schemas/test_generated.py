"""Models built from a service's ``.avsc`` at load time: no hand-written class needed."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pytest
from pydantic import ValidationError

from kep.schemas import (
    ConfluentCodec,
    Event,
    LocalSchemaRegistry,
    SchemaError,
    SingleObjectCodec,
    avro_schema,
    event_types,
    model_from_schema,
    schema_drift,
    schema_registry_client,
)
from kep.schemas.generated import is_generated
from shop.orders import OrderPlaced
from tests.schemas.conftest import SchemaDir
from tests.support.shop import SHOP_SCHEMAS

pytestmark = pytest.mark.unit

EVENT_FIELDS: list[dict[str, Any]] = [
    {"name": "event_id", "type": "string", "doc": "The idempotency key."},
    {"name": "occurred_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
]
STOCK: dict[str, Any] = {
    "type": "record",
    "name": "StockReserved",
    "namespace": "acme.inventory",
    "doc": "Stock was put aside for an order.",
    "fields": [
        *EVENT_FIELDS,
        {"name": "sku", "type": "string", "doc": "What."},
        {"name": "quantity", "type": "int"},
        {"name": "weight_kg", "type": "float"},
        {"name": "price", "type": "double"},
        {"name": "total_cents", "type": "long"},
        {"name": "fragile", "type": "boolean", "default": False},
        {"name": "label", "type": "bytes", "default": "\u00ff"},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "warehouse", "type": ["string", "null"], "default": "main"},
        {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
        {"name": "attributes", "type": {"type": "map", "values": "long"}},
        {"name": "expires_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {
            "name": "priority",
            "type": {"type": "enum", "name": "Priority", "symbols": ["LOW", "HIGH"]},
            "default": "LOW",
        },
        {
            "name": "bins",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Bin",
                    "fields": [{"name": "code", "type": "string"}, {"name": "priority", "type": "Priority"}],
                },
            },
        },
        {"name": "main_bin", "type": ["null", "Bin"], "default": None},
    ],
}


def stock(**values: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "sku": "A-1",
        "quantity": 2,
        "weight_kg": 1.5,
        "price": 9.99,
        "total_cents": 1998,
        "attributes": {"shelf": 4},
        "expires_at": datetime(2030, 1, 1, tzinfo=UTC),
        "bins": [{"code": "B1", "priority": "HIGH"}],
    }
    return {**data, **values}


def test_a_model_mirrors_the_schema_field_for_field() -> None:
    model = model_from_schema(STOCK)
    assert issubclass(model, Event) and is_generated(model)
    assert (model.__name__, model.avro_name, model.key_field) == (
        "StockReserved",
        "acme.inventory.StockReserved",
        None,
    )
    assert list(model.model_fields) == [f["name"] for f in STOCK["fields"]]
    assert model.__doc__ == "Stock was put aside for an order."
    assert model.model_fields["sku"].description == "What."
    event = model.model_validate(stock())
    assert event.fragile is False and event.label == b"\xff" and event.note is None  # type: ignore[attr-defined]
    assert event.warehouse == "main" and event.tags == []  # type: ignore[attr-defined]
    priority = type(event.priority)  # type: ignore[attr-defined]
    assert issubclass(priority, Enum) and [p.value for p in priority] == ["LOW", "HIGH"]
    assert event.bins[0].priority is priority.HIGH  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match="quantity"):
        model.model_validate(stock(quantity=2**31))  # an Avro int is 32-bit
    with pytest.raises(ValidationError, match="sku"):
        model.model_validate({k: v for k, v in stock().items() if k != "sku"})  # no default: required


def test_the_model_implies_exactly_its_schema_and_is_not_a_hand_written_event() -> None:
    model = model_from_schema(STOCK)
    assert avro_schema(model) == STOCK
    assert schema_drift(model, STOCK) is None
    assert "acme.inventory.StockReserved" not in event_types()
    assert model_from_schema(copy.deepcopy(STOCK)) is model  # the same schema, the same class
    changed = {**STOCK, "doc": "another doc"}
    assert model_from_schema(changed) is not model


@pytest.mark.parametrize("codec_kind", ["single-object", "confluent"])
def test_events_of_a_generated_model_round_trip_through_both_codecs(
    schema_dir: SchemaDir, codec_kind: str
) -> None:
    registry = LocalSchemaRegistry(schema_dir({"acme.inventory.StockReserved.v1.avsc": STOCK}))
    model = registry.model("acme.inventory.StockReserved")
    codec = (
        SingleObjectCodec(registry)
        if codec_kind == "single-object"
        else ConfluentCodec(schema_registry_client(f"mock://generated-{codec_kind}"), registry)
    )
    event = model.model_validate(stock(note="handle with care", main_bin={"code": "B2", "priority": "LOW"}))

    decoded = codec.decode(codec.encode(event))

    assert type(decoded) is model and decoded == event


def test_a_hand_written_model_once_imported_wins_over_the_schema() -> None:
    registry = LocalSchemaRegistry(SHOP_SCHEMAS)
    assert registry.model("kep.orders.OrderPlaced") is OrderPlaced
    assert not is_generated(OrderPlaced)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: {**s, "fields": s["fields"][1:]}, "needs the field 'event_id'"),
        (lambda s: {**s, "fields": s["fields"][:1] + s["fields"][2:]}, "needs the field 'occurred_at'"),
        (
            lambda s: {**s, "fields": [{"name": "event_id", "type": "long"}, *s["fields"][1:]]},
            "field 'event_id' must be string",
        ),
        (
            lambda s: {
                **s,
                "fields": [*s["fields"], {"name": "born", "type": {"type": "int", "logicalType": "date"}}],
            },
            r"field StockReserved\.born: logical type 'date' is not supported",
        ),
        (
            lambda s: {**s, "fields": [*s["fields"], {"name": "json", "type": "string"}]},
            r"field StockReserved\.json: 'json' cannot be a model field",
        ),
        (
            lambda s: {
                **s,
                "fields": [*s["fields"], {"name": "h", "type": {"type": "fixed", "name": "H", "size": 4}}],
            },
            r"field StockReserved\.h: Avro type 'fixed' is not supported",
        ),
        (
            lambda s: {
                **s,
                "fields": [
                    *s["fields"],
                    {
                        "name": "node",
                        "type": {
                            "type": "record",
                            "name": "Node",
                            "fields": [{"name": "next", "type": ["null", "Node"]}],
                        },
                    },
                ],
            },
            "recursive records are not supported",
        ),
        (lambda s: {**s, "type": "enum", "symbols": ["A"]}, "an event schema must be a record"),
    ],
)
def test_a_schema_that_cannot_be_a_kep_event_is_refused_naming_the_field(change: Any, message: str) -> None:
    schema = change(copy.deepcopy(STOCK))
    with pytest.raises(SchemaError, match=rf"schema acme\.inventory\.StockReserved \(x\.avsc\): .*{message}"):
        model_from_schema(schema, where="x.avsc")
