"""Confluent framing, against confluent-kafka's in-process mock registry (no registry server runs here)."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING

import pytest

from kep.schemas import (
    ConfluentCodec,
    DecodeError,
    EventCodec,
    IncompatibleSchemaError,
    LocalSchemaRegistry,
    SchemaError,
    SchemaRegistryUnavailableError,
    SubjectStrategy,
    UnknownSchemaError,
    codec_for,
    record_name_subject,
    schema_registry_client,
    topic_name_subject,
    topic_record_name_subject,
)
from shop.orders import OrderPlaced, PaymentCaptured
from tests.schemas.conftest import reference_body, v1_record

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import Schema

pytestmark = pytest.mark.unit

ORDER = "kep.orders.OrderPlaced"


@pytest.fixture
def url() -> str:
    return f"mock://kep-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def codec(url: str) -> ConfluentCodec:
    return ConfluentCodec(schema_registry_client(url))


def _schema(schema: dict[str, object]) -> Schema:
    # loaded (with authlib's import-time warning silenced) by schema_registry_client in the fixtures
    from confluent_kafka.schema_registry import Schema as RegistrySchema

    return RegistrySchema(json.dumps(schema), "AVRO")


def test_codec_for_a_registry_url_is_confluent_and_shares_the_client(url: str, order: OrderPlaced) -> None:
    producer_side, consumer_side = codec_for(url), codec_for(url)
    assert isinstance(producer_side, ConfluentCodec)
    assert isinstance(producer_side, EventCodec)
    assert consumer_side.decode(producer_side.encode(order)) == order


def test_both_events_round_trip(codec: ConfluentCodec, order: OrderPlaced, payment: PaymentCaptured) -> None:
    for event in (order, payment):
        decoded = codec.decode(codec.encode(event))
        assert decoded == event
        assert type(decoded) is type(event)


def test_wire_layout_is_magic_schema_id_and_plain_avro_body(
    codec: ConfluentCodec, order: OrderPlaced
) -> None:
    data = codec.encode(order)
    newest = LocalSchemaRegistry.default().latest(ORDER)
    registered = codec.client.get_latest_version(ORDER)  # subject: the record's full name
    assert data[:1] == b"\x00"
    assert int.from_bytes(data[1:5], "big") == registered.schema_id
    assert json.loads(registered.schema.schema_str or "") == newest.schema
    assert data[5:] == reference_body(newest.schema, order.model_dump())
    assert codec.schema_ref(OrderPlaced) == f"sr:{registered.schema_id}"


def test_schema_is_registered_once_and_fetched_once(
    codec: ConfluentCodec, order: OrderPlaced, url: str
) -> None:
    calls = {"register": 0, "get": 0}
    client = codec.client
    register, get = client.register_schema, client.get_schema

    def counting_register(*args: object, **kwargs: object) -> int:
        calls["register"] += 1
        return register(*args, **kwargs)  # type: ignore[arg-type]

    def counting_get(*args: object, **kwargs: object) -> object:
        calls["get"] += 1
        return get(*args, **kwargs)  # type: ignore[arg-type]

    client.register_schema = counting_register  # type: ignore[method-assign]
    client.get_schema = counting_get  # type: ignore[method-assign,assignment]
    reader = ConfluentCodec(client)
    blobs = [codec.encode(order) for _ in range(3)]
    assert [reader.decode(blob) for blob in blobs] == [order] * 3
    assert calls == {"register": 1, "get": 1}
    assert client.get_versions(ORDER) == [1]


def test_subject_strategy_names_the_subject(url: str, order: OrderPlaced) -> None:
    codec = ConfluentCodec(
        schema_registry_client(url), subject_strategy=lambda t, topic: f"{topic}-{t.avro_name}-custom"
    )
    codec.encode(order, "orders")
    assert codec.client.get_subjects() == [f"orders-{ORDER}-custom"]


@pytest.mark.parametrize(
    ("strategy", "subject"),
    [
        (record_name_subject, ORDER),
        (topic_name_subject, "orders-value"),
        (topic_record_name_subject, f"orders-{ORDER}"),
    ],
)
def test_the_three_confluent_subject_strategies(
    url: str, order: OrderPlaced, strategy: SubjectStrategy, subject: str
) -> None:
    codec = ConfluentCodec(schema_registry_client(url), subject_strategy=strategy)
    data = codec.encode(order, "orders")
    assert codec.client.get_subjects() == [subject]
    assert codec.schema_ref(OrderPlaced, "orders") == f"sr:{int.from_bytes(data[1:5], 'big')}"
    assert codec.decode(data) == order


def test_topic_strategies_need_the_topic(url: str, order: OrderPlaced) -> None:
    codec = ConfluentCodec(schema_registry_client(url), subject_strategy=topic_name_subject)
    with pytest.raises(SchemaError, match="the topic name subject strategy needs the topic"):
        codec.encode(order)


def test_v1_bytes_decode_as_the_v2_model_with_the_default(codec: ConfluentCodec, order: OrderPlaced) -> None:
    v1 = LocalSchemaRegistry.default().get(ORDER, 1)
    old_id = codec.client.register_schema(ORDER, _schema(v1.schema))  # what an old producer registered
    old_bytes = b"\x00" + old_id.to_bytes(4, "big") + reference_body(v1.schema, v1_record(order))
    decoded = codec.decode(old_bytes)
    assert isinstance(decoded, OrderPlaced)
    assert decoded.channel == "web"
    assert decoded == order.model_copy(update={"channel": "web"})


def test_unknown_schema_id_is_unknown_schema_error(codec: ConfluentCodec, order: OrderPlaced) -> None:
    data = b"\x00" + (4242).to_bytes(4, "big") + codec.encode(order)[5:]
    with pytest.raises(UnknownSchemaError, match="schema id 4242 is not in the registry") as caught:
        codec.decode(data)
    assert caught.value.raw == data


def test_ids_of_another_registry_are_unknown(order: OrderPlaced) -> None:
    data = codec_for(f"mock://a-{uuid.uuid4().hex}").encode(order)
    with pytest.raises(UnknownSchemaError):
        codec_for(f"mock://b-{uuid.uuid4().hex}").decode(data)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda data: b"", "magic byte is nothing, expected 00"),
        (lambda data: b"\xc3\x01" + data[1:], "not Confluent-framed Avro: magic byte is c3"),
        (lambda data: data[:3], "truncated Confluent header: 3 bytes, need 5"),
        (
            lambda data: data[:-3],
            "corrupt or truncated kep.orders.OrderPlaced body .*the data ends inside the record",
        ),
        (lambda data: data + b"\x01", "1 unexpected bytes after the kep.orders.OrderPlaced record"),
    ],
    ids=["empty", "wrong-magic", "short-header", "truncated", "trailing"],
)
def test_damaged_bytes_are_a_decode_error_that_keeps_them(
    codec: ConfluentCodec, order: OrderPlaced, mangle: object, message: str
) -> None:
    damaged = mangle(codec.encode(order))  # type: ignore[operator]
    with pytest.raises(DecodeError, match=message) as caught:
        codec.decode(damaged)
    assert caught.value.raw == damaged


def test_registry_refusing_the_schema_is_incompatible_schema_error(
    codec: ConfluentCodec, order: OrderPlaced, monkeypatch: pytest.MonkeyPatch
) -> None:
    from confluent_kafka.schema_registry import SchemaRegistryError

    def refuse(*args: object, **kwargs: object) -> int:
        raise SchemaRegistryError(409, 409, "Schema being registered is incompatible with an earlier schema")

    monkeypatch.setattr(codec.client, "register_schema", refuse)
    with pytest.raises(
        IncompatibleSchemaError, match=r"cannot register kep\.orders\.OrderPlaced v2 under subject"
    ):
        codec.encode(order)


def test_registry_failure_on_decode_is_not_a_decode_error(
    codec: ConfluentCodec, order: OrderPlaced, monkeypatch: pytest.MonkeyPatch
) -> None:
    from confluent_kafka.schema_registry import SchemaRegistryError

    data = codec.encode(order)
    reader = ConfluentCodec(codec.client)

    def unavailable(*args: object, **kwargs: object) -> object:
        raise SchemaRegistryError(503, 50301, "unavailable")

    monkeypatch.setattr(codec.client, "get_schema", unavailable)
    with pytest.raises(
        SchemaRegistryUnavailableError, match="schema registry lookup of id 1 failed"
    ) as caught:
        reader.decode(data)
    assert not isinstance(caught.value, DecodeError)  # retry it; do not dead-letter good data
