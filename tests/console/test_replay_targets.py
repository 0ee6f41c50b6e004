"""A replay from the console runs the event again in the group that dead-lettered it, and in no other group on
the same source topic, even once that group's idempotency key has expired.

The console replays through ``kep.consumers.dlq.replay`` (the code path of ``kep dlq replay``). That path
republishes to the shared source topic today, so every group on the topic receives the copy; issue 15 changes
it to deliver to the failing group only. Until then this test is expected to fail (non-strict: it passes as
soon as the replay path delivers to the failing group alone).
"""

from __future__ import annotations

import threading

import pytest
from confluent_kafka import Consumer, TopicPartition

from kep.console.actions import run_replay
from kep.consumers.app import App
from kep.consumers.context import MessageContext
from kep.producers.producer import EventProducer
from kep.topology.settings import KafkaSettings
from shop.orders import LineItem, OrderPlaced
from tests.console.conftest import Cluster
from tests.support.kafka import read_topic
from tests.support.runtime import Setup, running
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class DownstreamDownError(Exception):
    pass


def _caught_up(kafka: str, group: str, topic: str) -> bool:
    """``group`` committed the end of every partition of ``topic``."""
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": group, "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        for tp in committed:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            if high > low and tp.offset < high:  # an empty partition needs no commit
                return False
        return True
    finally:
        consumer.close()


def test_replay_runs_the_event_again_in_the_failing_group_only(cluster: Cluster) -> None:
    kafka = KafkaSettings(bootstrap_servers=cluster.kafka)
    fixed = threading.Event()
    billed: list[str] = []
    shipped: list[str] = []
    billing, shipping = (
        App(cluster.group, topics=[cluster.source]),
        App(cluster.other, topics=[cluster.source]),
    )

    @billing.handler(cluster.source)
    def bill(order: OrderPlaced, ctx: MessageContext) -> None:
        if not fixed.is_set():
            raise DownstreamDownError(f"cannot bill {order.order_id}")
        billed.append(order.event_id)

    @shipping.handler(cluster.source)
    def ship(order: OrderPlaced, ctx: MessageContext) -> None:
        shipped.append(order.event_id)

    order = OrderPlaced(
        order_id="o-1",
        customer_id="c-1",
        items=[LineItem(sku="sku-1", quantity=1, unit_price_cents=100)],
        amount_cents=100,
        currency="EUR",
    )
    billing_setup = Setup(kafka, cluster.topology, cluster.source, cluster.group)
    shipping_setup = Setup(kafka, cluster.topology, cluster.source, cluster.other)
    # shipping forgets its keys after 0.2 s: a second delivery to it would run the handler again
    with running(billing, billing_setup), running(shipping, shipping_setup, idempotency_ttl_s=0.2):
        with EventProducer(kafka, cluster.topology) as producer:
            producer.publish_and_wait(order, topic=cluster.source)
        [dead] = read_topic(cluster.kafka, cluster.dlq, expected=1, timeout=30)  # after the 1 s retry
        wait_until(lambda: shipped == [order.event_id], message="shipping handled the order once")

        fixed.set()
        result = run_replay(
            kafka, cluster.topology, cluster.dlq, [(dead.partition() or 0, dead.offset() or 0)], timeout_s=10
        )
        assert (result.replayed, result.failed) == (1, 0)
        wait_until(lambda: billed == [order.event_id], message="billing handled the replayed order")
        wait_until(
            lambda: _caught_up(cluster.kafka, cluster.other, cluster.source),
            message="shipping read everything on the source topic",
        )
        assert shipped == [order.event_id], "another group on the source topic ran the replayed event again"
