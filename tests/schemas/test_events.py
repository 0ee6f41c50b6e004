from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import ClassVar

import pytest
from pydantic import ValidationError

from kep.schemas import Event, SchemaError, SchemaNotFoundError, event_type_for, event_types
from shop.orders import LineItem, OrderPlaced, PaymentCaptured

pytestmark = pytest.mark.unit


def test_event_id_defaults_to_a_fresh_uuid_and_is_the_idempotency_key(order: OrderPlaced) -> None:
    other = order.model_copy(update={"event_id": str(uuid.uuid4())})
    assert uuid.UUID(order.event_id).version == 4
    assert order.idempotency_key() == order.event_id
    assert other.idempotency_key() != order.idempotency_key()
    fresh = [OrderPlaced.model_validate(order.model_dump(exclude={"event_id"})).event_id for _ in range(3)]
    assert len(set(fresh)) == 3


def test_kafka_key_is_the_key_field(order: OrderPlaced, payment: PaymentCaptured) -> None:
    assert OrderPlaced.key_field == "order_id"
    assert order.kafka_key() == "o-1001"
    assert payment.kafka_key() == "o-1001"  # a payment lands on its order's partition


def test_occurred_at_is_utc_and_cut_to_milliseconds(order: OrderPlaced) -> None:
    cet = timezone(timedelta(hours=1))
    event = OrderPlaced.model_validate(
        {**order.model_dump(), "occurred_at": datetime(2024, 5, 1, 13, 30, 0, 123456, tzinfo=cet)}
    )
    assert event.occurred_at == datetime(2024, 5, 1, 12, 30, 0, 123000, tzinfo=UTC)
    assert event.occurred_at.tzinfo is UTC
    naive = OrderPlaced.model_validate({**order.model_dump(), "occurred_at": datetime(2024, 5, 1, 12, 0)})
    assert naive.occurred_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert order.occurred_at.microsecond % 1000 == 0


def test_events_are_frozen_and_reject_unknown_fields(order: OrderPlaced) -> None:
    with pytest.raises(ValidationError, match="frozen"):
        order.order_id = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="coupon"):
        OrderPlaced.model_validate({**order.model_dump(), "coupon": "X"})
    with pytest.raises(ValidationError, match="frozen"):
        order.items[0].sku = "other"  # type: ignore[misc]


def test_models_validate_their_fields(order: OrderPlaced) -> None:
    data = order.model_dump()
    with pytest.raises(ValidationError, match="currency"):
        OrderPlaced.model_validate({**data, "currency": "euro"})
    with pytest.raises(ValidationError, match="quantity"):
        LineItem(sku="X", quantity=2**31, unit_price_cents=1)  # Avro int is 32-bit
    with pytest.raises(ValidationError, match="items"):
        OrderPlaced.model_validate({**data, "items": []})


@pytest.mark.parametrize("quantity", [0, -1, -(2**31)])
def test_a_line_item_quantity_below_one_is_refused(quantity: int) -> None:
    # Int32's own 32-bit range must not replace the field's tighter bound (ge=1).
    with pytest.raises(ValidationError, match=r"quantity\n.*greater than or equal to 1"):
        LineItem(sku="X", quantity=quantity, unit_price_cents=1)
    assert LineItem(sku="X", quantity=1, unit_price_cents=1).quantity == 1
    assert LineItem(sku="X", quantity=2**31 - 1, unit_price_cents=1).quantity == 2**31 - 1


def test_event_types_maps_avro_names_to_models() -> None:
    types = event_types()
    assert types["kep.orders.OrderPlaced"] is OrderPlaced
    assert types["kep.orders.PaymentCaptured"] is PaymentCaptured
    assert event_type_for("kep.orders.PaymentCaptured") is PaymentCaptured
    types.clear()  # a copy: the registry is untouched
    assert event_type_for("kep.orders.OrderPlaced") is OrderPlaced


def test_unknown_event_type_names_what_is_known() -> None:
    with pytest.raises(
        SchemaNotFoundError, match=r"kep\.orders\.Refunded.*defined: .*kep\.orders\.OrderPlaced"
    ):
        event_type_for("kep.orders.Refunded")


def test_a_second_model_with_the_same_avro_name_is_refused() -> None:
    with pytest.raises(SchemaError, match="defined twice"):

        class Impostor(Event):
            avro_name: ClassVar[str] = "kep.orders.OrderPlaced"

    assert event_type_for("kep.orders.OrderPlaced") is OrderPlaced


def test_key_field_must_be_a_field() -> None:
    with pytest.raises(SchemaError, match="key_field 'nope'"):

        class Broken(Event):
            avro_name: ClassVar[str] = "kep.tests.Broken"
            key_field: ClassVar[str | None] = "nope"
