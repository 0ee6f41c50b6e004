"""Delivery: failures with their Kafka code, raw forwarding, flushing on close and SIGTERM, backpressure."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError

from kep.broker import EmbeddedBroker
from kep.producers import (
    BackpressureTimeoutError,
    DeliveryError,
    DeliveryReport,
    EventProducer,
    ProducerSettings,
)
from kep.topology import KafkaSettings
from shop.samples import sample_events
from tests.producers._support import ORDER, topology_of
from tests.support.kafka import create_topic, read_topic

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_produce_raw_sends_key_value_and_headers_unchanged(
    kafka: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=1, prefix="orders.billing.dlq")
    value = b"\xc3\x01not-avro\x00\xff" + bytes(range(256))
    headers = [("kep-event-type", b"kep.orders.OrderPlaced"), ("dup", b"1"), ("dup", b"2"), ("none", None)]
    with EventProducer(KafkaSettings(bootstrap_servers=kafka), topology_of()) as p:
        report = p.produce_raw(topic, b"\x00key", value, headers).result(20)  # type: ignore[union-attr]
        p.produce_raw(topic, None, None)  # a tombstone
    assert report.offset == 0
    first, tombstone = read_topic(kafka, topic, expected=2)
    assert (first.key(), first.value(), first.headers()) == (b"\x00key", value, headers)
    assert (tombstone.key(), tombstone.value(), tombstone.headers()) == (None, None, None)


def test_failed_delivery_is_a_delivery_error_with_the_kafka_code(kafka: str) -> None:
    settings = ProducerSettings(delivery_timeout_ms=1000)
    with EventProducer(KafkaSettings(bootstrap_servers=kafka), topology_of(), settings=settings) as p:
        future = p.produce_raw("kep-test-no-such-topic", b"k", b"v")
        assert future is not None
        error = future.exception(timeout=20)
        with pytest.raises(DeliveryError, match="MSG_SIZE_TOO_LARGE") as too_large:
            p.produce_raw("kep-test-no-such-topic", None, b"x" * 2_000_000)
    assert isinstance(error, DeliveryError)
    assert error.code in (KafkaError._MSG_TIMED_OUT, KafkaError.UNKNOWN_TOPIC_OR_PART)
    assert error.topic == "kep-test-no-such-topic" and error.reason
    assert too_large.value.code == KafkaError.MSG_SIZE_TOO_LARGE


def test_close_flushes_what_is_still_queued(kafka: str, topic_factory: Callable[..., str]) -> None:
    topic = topic_factory(partitions=2, prefix="orders")
    delivered: list[DeliveryReport] = []
    # A long linger keeps records queued: only the flush in close() sends them before it returns.
    producer = EventProducer(
        KafkaSettings(bootstrap_servers=kafka),
        topology_of((topic, 2, [ORDER])),
        settings=ProducerSettings(linger_ms=30_000),
    )
    for event in sample_events(20, kind="orders"):
        producer.publish(event, on_delivery=lambda r, e: delivered.append(r) if r else None)
    assert delivered == []
    assert producer.close(timeout=20) == 0
    assert len(delivered) == 20
    read_topic(kafka, topic, expected=20)


@pytest.fixture
def own_broker() -> Iterator[EmbeddedBroker]:
    """A broker of this test's own, so pausing it does not stall anyone else."""
    with EmbeddedBroker() as broker:
        yield broker


def test_full_queue_on_a_stalled_broker_raises_backpressure_timeout(own_broker: EmbeddedBroker) -> None:
    topic = create_topic(own_broker.bootstrap_servers, "orders-stalled", 1)
    settings = ProducerSettings(queue_max_messages=5, publish_block_timeout_s=0.5, linger_ms=0)
    events = sample_events(40, kind="orders")
    producer = EventProducer(
        KafkaSettings(bootstrap_servers=own_broker.bootstrap_servers),
        topology_of((topic, 1, [ORDER])),
        settings=settings,
    )
    try:
        producer.publish_and_wait(events[0], timeout=20)  # connected before the broker stops answering
        own_broker.pause()
        with pytest.raises(BackpressureTimeoutError, match=topic) as info:
            for event in events[1:]:
                producer.publish(event, on_delivery=lambda r, e: None)
        assert info.value.waited_s >= settings.publish_block_timeout_s
    finally:
        own_broker.resume()
        remaining = producer.close(timeout=30)
    assert remaining == 0


_SIGTERM_SCRIPT = """
import os, signal, sys, time
from kep.producers import EventProducer, ProducerSettings
from shop.samples import sample_events
from tests.producers._support import ORDER, topology_of
from kep.topology import KafkaSettings

bootstrap, topic = sys.argv[1], sys.argv[2]
producer = EventProducer(KafkaSettings(bootstrap_servers=bootstrap), topology_of((topic, 1, [ORDER])),
                         settings=ProducerSettings(linger_ms=60_000))
producer.install_signal_handlers(flush_timeout=20)
for event in sample_events(10, kind="orders"):
    producer.publish(event, on_delivery=lambda r, e: None)
print("queued", flush=True)
time.sleep(60)  # sleep-ok: the child idles until the test sends SIGTERM
"""


def test_sigterm_flushes_queued_records_then_terminates(
    kafka: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=1, prefix="orders")
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_SIGTERM_SCRIPT), kafka, topic],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "queued"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    read_topic(kafka, topic, expected=10)
