"""Checks that refuse an event before anything is sent: the topic stays empty."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kep.producers import (
    AmbiguousTopicError,
    EventProducer,
    InvalidHeaderError,
    InvalidTraceparentError,
    MissingKeyError,
    ProducerClosedError,
    UnknownTopicError,
    WrongEventTypeError,
)
from kep.producers import headers as h
from kep.topology import KafkaSettings
from shop.orders import OrderPlaced, PaymentCaptured
from shop.samples import sample_events
from tests.producers._support import ORDER, PAYMENT, topology_of
from tests.support.kafka import read_topic

pytestmark = pytest.mark.integration


def _order_and_payment() -> tuple[OrderPlaced, PaymentCaptured]:
    order, payment = sample_events(2, kind="mixed")
    assert isinstance(order, OrderPlaced) and isinstance(payment, PaymentCaptured)
    return order, payment


def test_topic_missing_from_the_topology_is_refused_and_stays_empty(
    kafka: str, topic_factory: Callable[..., str]
) -> None:
    declared = topic_factory(partitions=1, prefix="orders")
    undeclared = topic_factory(partitions=1, prefix="elsewhere")  # exists on the broker, not in the topology
    order, _ = _order_and_payment()
    with EventProducer(KafkaSettings(bootstrap_servers=kafka), topology_of((declared, 1, [ORDER]))) as p:
        with pytest.raises(UnknownTopicError, match=undeclared) as info:
            p.publish(order, topic=undeclared)
        assert declared in str(info.value)
        p.produce_raw(undeclared, b"k", b"control")  # proves the reader sees what does reach the topic
    assert [r.value() for r in read_topic(kafka, undeclared, expected=1)] == [b"control"]


def test_event_type_the_topic_does_not_carry_is_refused_and_topic_stays_empty(
    kafka: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=1, prefix="orders")
    order, payment = _order_and_payment()
    with EventProducer(KafkaSettings(bootstrap_servers=kafka), topology_of((topic, 1, [ORDER]))) as p:
        with pytest.raises(WrongEventTypeError) as info:
            p.publish(payment, topic=topic)
        assert PAYMENT in str(info.value) and topic in str(info.value)
        with pytest.raises(WrongEventTypeError):
            p.publish(payment, topic=topic, on_delivery=lambda r, e: None)
        p.publish_and_wait(order, topic=topic)
    (record,) = read_topic(kafka, topic, expected=1)
    assert h.header_str(record.headers(), h.EVENT_TYPE) == ORDER


def test_invalid_traceparent_is_refused_and_topic_stays_empty(
    kafka: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=1, prefix="orders")
    order, _ = _order_and_payment()
    with EventProducer(KafkaSettings(bootstrap_servers=kafka), topology_of((topic, 1, [ORDER]))) as p:
        with pytest.raises(InvalidTraceparentError, match="not-a-trace"):
            p.publish(order, traceparent="not-a-trace")
        with pytest.raises(InvalidHeaderError, match=h.EVENT_TYPE):
            p.publish(order, headers={h.EVENT_TYPE: "forged"})
        assert p.flush(10) == 0
    read_topic(kafka, topic, expected=0)


def test_event_type_on_several_topics_needs_an_explicit_topic(
    kafka: str, topic_factory: Callable[..., str]
) -> None:
    first = topic_factory(partitions=1, prefix="orders")
    second = topic_factory(partitions=1, prefix="orders-copy")
    order, payment = _order_and_payment()
    topology = topology_of((first, 1, [ORDER]), (second, 1, [ORDER]))
    with EventProducer(KafkaSettings(bootstrap_servers=kafka), topology) as p:
        with pytest.raises(AmbiguousTopicError, match="several topics"):
            p.publish(order)
        with pytest.raises(AmbiguousTopicError, match="no topic"):
            p.publish(payment)
        assert p.publish_and_wait(order, topic=second).topic == second
    read_topic(kafka, first, expected=0)


def test_empty_key_field_is_refused(kafka: str, topic_factory: Callable[..., str]) -> None:
    topic = topic_factory(partitions=1, prefix="orders")
    order, _ = _order_and_payment()
    keyless = order.model_copy(update={"order_id": ""})
    with EventProducer(KafkaSettings(bootstrap_servers=kafka), topology_of((topic, 1, [ORDER]))) as p:
        with pytest.raises(MissingKeyError, match="order_id"):
            p.publish(keyless)
    read_topic(kafka, topic, expected=0)


def test_closed_producer_refuses_to_publish(kafka: str, topic_factory: Callable[..., str]) -> None:
    topic = topic_factory(partitions=1, prefix="orders")
    order, _ = _order_and_payment()
    producer = EventProducer(KafkaSettings(bootstrap_servers=kafka), topology_of((topic, 1, [ORDER])))
    assert producer.close() == 0
    assert producer.close() == 0  # idempotent
    with pytest.raises(ProducerClosedError):
        producer.publish(order)
    with pytest.raises(ProducerClosedError):
        producer.produce_raw(topic, None, b"x")
