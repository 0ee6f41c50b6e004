"""What a published record looks like on the broker: value, key, headers, partition, offsets."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kep.producers import DeliveryError, DeliveryReport, EventProducer
from kep.producers import headers as h
from kep.schemas.codec import codec_for
from kep.topology import KafkaSettings
from shop.orders import OrderPlaced, PaymentCaptured
from shop.samples import sample_events
from tests.producers._support import ORDER, PAYMENT, java_partition, topology_of
from tests.support.kafka import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.embedded]

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _orders(n: int) -> list[OrderPlaced]:
    return [e for e in sample_events(n, kind="orders") if isinstance(e, OrderPlaced)]


def test_record_carries_event_type_schema_idempotency_key_and_traceparent(
    kafka: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=1, prefix="orders")
    codec = codec_for()
    order = _orders(1)[0]
    with EventProducer(
        KafkaSettings(bootstrap_servers=kafka), topology_of((topic, 1, [ORDER])), codec=codec
    ) as p:
        p.publish_and_wait(order, traceparent=TRACEPARENT, headers=[("tenant", b"acme"), ("note", None)])
    (record,) = read_topic(kafka, topic, expected=1)
    headers = record.headers()
    assert headers is not None
    assert h.header_str(headers, h.EVENT_TYPE) == "kep.orders.OrderPlaced"
    assert h.header_str(headers, h.SCHEMA) == codec.schema_ref(OrderPlaced)
    assert (h.header_str(headers, h.SCHEMA) or "").startswith("sof:")
    assert h.header_str(headers, h.IDEMPOTENCY_KEY) == order.event_id
    assert h.header_str(headers, h.TRACEPARENT) == TRACEPARENT
    assert ("tenant", b"acme") in headers and ("note", None) in headers
    assert codec.decode(record.value() or b"") == order


def test_record_without_traceparent_has_no_traceparent_header(
    kafka: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=1, prefix="orders")
    with EventProducer(KafkaSettings(bootstrap_servers=kafka), topology_of((topic, 1, [ORDER]))) as p:
        p.publish_and_wait(_orders(1)[0])
    (record,) = read_topic(kafka, topic, expected=1)
    headers = record.headers()
    assert isinstance(headers, list)
    assert [name for name, _ in headers] == [h.EVENT_TYPE, h.SCHEMA, h.IDEMPOTENCY_KEY]


class _TenantOrder(OrderPlaced):
    """An order whose idempotency key is scoped by tenant."""

    def idempotency_key(self) -> str:
        return f"acme/{self.event_id}"


def test_idempotency_key_header_is_what_the_model_says_when_it_overrides_it(
    kafka: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=1, prefix="orders")
    order = _TenantOrder(**_orders(1)[0].__dict__)
    with EventProducer(KafkaSettings(bootstrap_servers=kafka), topology_of((topic, 1, [ORDER]))) as p:
        p.publish_and_wait(order)
        p.publish_and_wait(_orders(1)[0])
    custom, plain = read_topic(kafka, topic, expected=2)
    assert h.header_str(custom.headers(), h.IDEMPOTENCY_KEY) == f"acme/{order.event_id}"
    assert h.header_str(plain.headers(), h.IDEMPOTENCY_KEY) == _orders(1)[0].event_id


def test_key_is_the_key_field_unless_given(kafka: str, topic_factory: Callable[..., str]) -> None:
    topic = topic_factory(partitions=2, prefix="orders")
    first, second = _orders(2)
    with EventProducer(KafkaSettings(bootstrap_servers=kafka), topology_of((topic, 2, [ORDER]))) as p:
        from_field = p.publish_and_wait(first)
        explicit = p.publish_and_wait(second, key=b"explicit-key")
    assert from_field.key == first.order_id.encode()
    assert explicit.key == b"explicit-key"
    keys = {record.key() for record in read_topic(kafka, topic, expected=2)}
    assert keys == {first.order_id.encode(), b"explicit-key"}


def test_keyed_records_land_on_the_partition_the_java_client_would_choose(
    kafka: str, topic_factory: Callable[..., str]
) -> None:
    partitions = 6
    topic = topic_factory(partitions=partitions, prefix="orders")
    orders = _orders(24)
    expected = {o.order_id.encode(): java_partition(o.order_id.encode(), partitions) for o in orders}
    assert len(set(expected.values())) > 1, "the keys must spread over several partitions to prove anything"
    with EventProducer(
        KafkaSettings(bootstrap_servers=kafka), topology_of((topic, partitions, [ORDER]))
    ) as p:
        futures = [p.publish(order) for order in orders]
        reports = [f.result(20) for f in futures]
    assert {r.key: r.partition for r in reports} == expected
    stored = {record.key(): record.partition() for record in read_topic(kafka, topic, expected=len(orders))}
    assert stored == expected


def test_publish_and_wait_returns_where_the_record_was_stored(
    kafka: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=1, prefix="orders")
    with EventProducer(KafkaSettings(bootstrap_servers=kafka), topology_of((topic, 1, [ORDER]))) as p:
        reports = [p.publish_and_wait(order, timeout=20) for order in _orders(3)]
    assert [r.offset for r in reports] == [0, 1, 2]
    assert {(r.topic, r.partition) for r in reports} == {(topic, 0)}
    assert all(r.timestamp > 0 for r in reports)


def test_topic_is_chosen_from_the_event_type(kafka: str, topic_factory: Callable[..., str]) -> None:
    orders_topic = topic_factory(partitions=1, prefix="orders")
    payments_topic = topic_factory(partitions=1, prefix="payments")
    topology = topology_of((orders_topic, 1, [ORDER]), (payments_topic, 1, [PAYMENT]))
    order, payment = sample_events(2, kind="mixed")
    assert isinstance(payment, PaymentCaptured)
    with EventProducer(KafkaSettings(bootstrap_servers=kafka), topology) as p:
        assert p.publish_and_wait(order).topic == orders_topic
        assert p.publish_and_wait(payment).topic == payments_topic


def test_on_delivery_callback_replaces_the_future(kafka: str, topic_factory: Callable[..., str]) -> None:
    topic = topic_factory(partitions=3, prefix="orders")
    seen: list[tuple[DeliveryReport | None, DeliveryError | None]] = []
    orders = _orders(50)
    with EventProducer(KafkaSettings(bootstrap_servers=kafka), topology_of((topic, 3, [ORDER]))) as p:
        results = [p.publish(order, on_delivery=lambda r, e: seen.append((r, e))) for order in orders]
        assert p.flush(20) == 0
    assert results == [None] * len(orders)
    assert len(seen) == len(orders) and all(r is not None and e is None for r, e in seen)
    assert {r.key for r, _ in seen if r is not None} == {o.order_id.encode() for o in orders}


def test_future_resolves_when_waited_on_without_any_other_poll(
    kafka: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=1, prefix="orders")
    with EventProducer(KafkaSettings(bootstrap_servers=kafka), topology_of((topic, 1, [ORDER]))) as p:
        future = p.publish(_orders(1)[0])
        report = future.result(timeout=20)
        assert future.done() and report.topic == topic
