"""Key-ordered parallelism: many workers within one partition, order kept per key, commits never pass an
unfinished offset."""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from kep.consumers.app import App
from kep.consumers.context import MessageContext
from kep.producers.producer import EventProducer
from shop.orders import LineItem, OrderPlaced
from tests.support.runtime import applied_topology, running
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def test_key_ordered_mode_keeps_order_per_key_and_runs_keys_in_parallel(kafka: str) -> None:
    setup = applied_topology(kafka, partitions=1)
    keys = [f"order-{k}" for k in range(8)]
    events = [
        OrderPlaced(
            order_id=keys[i % len(keys)], customer_id=str(i), items=[LineItem(sku="S", quantity=1, unit_price_cents=1)],
            amount_cents=1, currency="EUR",
        )
        for i in range(400)
    ]  # fmt: skip
    with EventProducer(setup.kafka, setup.topology) as producer:
        for event in events:
            producer.publish(event, topic=setup.topic, on_delivery=lambda r, e: None)
    app = App(setup.group, topics=[setup.topic])
    order: dict[str, list[int]] = {k: [] for k in keys}
    lock = threading.Lock()
    active, peak = [0], [0]

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.005)  # sleep-ok: stands in for the handler's I/O
        with lock:
            active[0] -= 1
            order[event.order_id].append(int(event.customer_id))

    with running(app, setup, concurrency="key", workers=8):
        wait_until(lambda: sum(map(len, order.values())) == len(events), timeout=60, message="all handled")
    for key in keys:
        expected = [int(e.customer_id) for e in events if e.order_id == key]
        assert order[key] == expected, f"order broken for {key}"
    assert peak[0] > 1, "key-ordered mode never ran two handlers at once"
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": setup.group})
    [tp] = consumer.committed([TopicPartition(setup.topic, 0)], timeout=10)
    consumer.close()
    assert tp.offset == len(events)
