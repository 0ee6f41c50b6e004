from __future__ import annotations

import pickle
from typing import ClassVar

import pytest
from pydantic import ValidationError

from kep.schemas import (
    DecodeError,
    EncodeError,
    Event,
    EventCodec,
    LocalSchemaRegistry,
    SchemaError,
    SchemaNotFoundError,
    SingleObjectCodec,
    UnknownSchemaError,
    codec_for,
)
from shop.orders import LineItem, OrderPlaced, PaymentCaptured, PaymentMethod
from tests.schemas.conftest import SchemaDir, reference_body, shipped, v1_record

pytestmark = pytest.mark.unit

ORDER = "kep.orders.OrderPlaced"


@pytest.fixture
def codec() -> SingleObjectCodec:
    return SingleObjectCodec()


def test_codec_for_without_a_registry_url_is_single_object() -> None:
    codec = codec_for()
    assert isinstance(codec, SingleObjectCodec)
    assert isinstance(codec, EventCodec)


def test_both_events_round_trip(
    codec: SingleObjectCodec, order: OrderPlaced, payment: PaymentCaptured
) -> None:
    for event in (order, payment):
        decoded = codec.decode(codec.encode(event))
        assert decoded == event
        assert type(decoded) is type(event)


def test_wire_layout_is_marker_fingerprint_and_plain_avro_body(
    codec: SingleObjectCodec, order: OrderPlaced
) -> None:
    data = codec.encode(order)
    newest = LocalSchemaRegistry.default().latest(ORDER)
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == newest.fingerprint
    assert data[10:] == reference_body(newest.schema, order.model_dump())
    assert codec.schema_ref(OrderPlaced) == f"sof:{data[2:10].hex()}"


def test_decoded_events_are_complete_pydantic_models(codec: SingleObjectCodec, order: OrderPlaced) -> None:
    decoded = codec.decode(codec.encode(order))
    assert isinstance(decoded, OrderPlaced)
    assert all(type(item) is LineItem for item in decoded.items)
    assert decoded.items[1] == LineItem(sku="PEN-7", quantity=1, unit_price_cents=199)
    assert decoded.occurred_at == order.occurred_at and decoded.occurred_at.tzinfo is not None
    assert decoded.model_dump() == order.model_dump()
    assert decoded.model_fields_set == set(OrderPlaced.model_fields)
    assert OrderPlaced.model_validate(decoded.model_dump()) == decoded
    assert decoded.model_copy(update={"channel": "store"}).channel == "store"
    assert decoded.channel == "mobile"
    assert pickle.loads(pickle.dumps(decoded)) == decoded
    assert repr(decoded).startswith("OrderPlaced(event_id=")
    with pytest.raises(ValidationError, match="frozen"):
        decoded.channel = "web"  # type: ignore[misc]


def test_enums_decode_to_members(codec: SingleObjectCodec, payment: PaymentCaptured) -> None:
    decoded = codec.decode(codec.encode(payment))
    assert isinstance(decoded, PaymentCaptured)
    assert decoded.method is PaymentMethod.WALLET


def test_v1_bytes_decode_as_the_v2_model_with_the_default(
    codec: SingleObjectCodec, order: OrderPlaced
) -> None:
    v1 = LocalSchemaRegistry.default().get(ORDER, 1)
    old_bytes = b"\xc3\x01" + v1.fingerprint + reference_body(v1.schema, v1_record(order))
    decoded = codec.decode(old_bytes)
    assert isinstance(decoded, OrderPlaced)
    assert decoded.channel == "web"  # v2's default; the order said "mobile" but v1 could not carry it
    assert decoded == order.model_copy(update={"channel": "web"})
    assert all(type(item) is LineItem for item in decoded.items)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda data: b"", "starts with nothing, expected c301"),
        (lambda data: b"\x00\x01" + data[2:], "not an Avro single object: starts with 0001"),
        (lambda data: b"{" + data[1:], "starts with 7b01"),
        (lambda data: data[:7], "truncated single-object header: 7 bytes, need 10"),
        (
            lambda data: data[:-4],
            "corrupt or truncated kep.orders.OrderPlaced body .*the data ends inside the record",
        ),
        (lambda data: data[:10], "corrupt or truncated kep.orders.OrderPlaced body"),
        (lambda data: data[:10] + b"\x03" + data[11:], "corrupt or truncated .*negative length -2"),
        (lambda data: data[:12] + b"\xff" + data[13:], "corrupt or truncated .*UnicodeDecodeError"),
        (lambda data: data + b"\x00\x00", "2 unexpected bytes after the kep.orders.OrderPlaced record"),
    ],
    ids=[
        "empty",
        "wrong-magic",
        "json",
        "short-header",
        "truncated",
        "no-body",
        "negative-length",
        "bad-utf8",
        "trailing",
    ],
)
def test_damaged_bytes_are_a_decode_error_that_keeps_them(
    codec: SingleObjectCodec, order: OrderPlaced, mangle: object, message: str
) -> None:
    damaged = mangle(codec.encode(order))  # type: ignore[operator]
    with pytest.raises(DecodeError, match=message) as caught:
        codec.decode(damaged)
    assert caught.value.raw == damaged
    assert not isinstance(caught.value, UnknownSchemaError)


def test_unknown_fingerprint_is_unknown_schema_error(codec: SingleObjectCodec, order: OrderPlaced) -> None:
    data = b"\xc3\x01" + bytes.fromhex("0011223344556677") + codec.encode(order)[10:]
    with pytest.raises(UnknownSchemaError, match="0011223344556677") as caught:
        codec.decode(data)
    assert caught.value.raw == data
    assert isinstance(caught.value, DecodeError)


def test_schema_that_cannot_be_an_event_is_a_decode_error_naming_it(schema_dir: SchemaDir) -> None:
    thing = {
        "type": "record",
        "name": "Thing",
        "namespace": "kep.tests",
        "fields": [{"name": "x", "type": "long"}],
    }
    registry = LocalSchemaRegistry(schema_dir({"kep.tests.Thing.v1.avsc": thing}))
    data = b"\xc3\x01" + registry.latest("kep.tests.Thing").fingerprint + b"\x02"
    with pytest.raises(
        DecodeError,
        match=r"fingerprint .* is kep\.tests\.Thing, which kep cannot build a model for: .*event_id",
    ) as caught:
        SingleObjectCodec(registry).decode(data)
    assert caught.value.raw == data


def test_schema_without_a_hand_written_model_decodes_into_a_model_built_from_it(
    schema_dir: SchemaDir,
) -> None:
    stock = {
        "type": "record",
        "name": "StockReserved",
        "namespace": "acme.inventory",
        "fields": [
            {"name": "event_id", "type": "string"},
            {"name": "occurred_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "sku", "type": "string"},
            {"name": "quantity", "type": "int"},
        ],
    }
    registry = LocalSchemaRegistry(schema_dir({"acme.inventory.StockReserved.v1.avsc": stock}))
    model = registry.model("acme.inventory.StockReserved")
    codec = SingleObjectCodec(registry)

    event = codec.decode(codec.encode(model(sku="A-1", quantity=2)))

    assert type(event) is model and (event.sku, event.quantity) == ("A-1", 2)  # type: ignore[attr-defined]


def test_a_registry_whose_newest_schema_is_not_the_model_is_refused(
    schema_dir: SchemaDir, order: OrderPlaced
) -> None:
    only_v1 = LocalSchemaRegistry(schema_dir({f"{ORDER}.v1.avsc": shipped(f"{ORDER}.v1.avsc")}))
    with pytest.raises(
        SchemaError, match=r"OrderPlaced v1 .* does not match the model shop\.orders\.OrderPlaced"
    ):
        SingleObjectCodec(only_v1).encode(order)
    data = SingleObjectCodec().encode(order)  # v2 bytes: unknown to that registry
    with pytest.raises(UnknownSchemaError):
        SingleObjectCodec(only_v1).decode(data)


def test_event_types_without_a_schema_cannot_be_encoded(codec: SingleObjectCodec) -> None:
    class Unshipped(Event):
        avro_name: ClassVar[str] = "kep.tests.Unshipped"

    with pytest.raises(SchemaNotFoundError, match=r"kep\.tests\.Unshipped"):
        codec.encode(Unshipped())


def test_data_that_does_not_fit_the_schema_is_an_encode_error(
    codec: SingleObjectCodec, order: OrderPlaced
) -> None:
    unchecked = OrderPlaced.model_construct(**{**order.__dict__, "amount_cents": "lots"})
    with pytest.raises(
        EncodeError, match=rf"cannot encode kep\.orders\.OrderPlaced event '{order.event_id}'"
    ):
        codec.encode(unchecked)
