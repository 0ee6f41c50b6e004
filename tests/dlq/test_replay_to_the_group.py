"""A replayed dead letter reaches only the group that dead-lettered it, however long after the others handled it."""

from __future__ import annotations

import threading
import time

import pytest

from kep.consumers.app import App
from kep.consumers.context import MessageContext
from kep.consumers.dlq import replay, start_replay_progress
from kep.topology import admin
from kep.topology.model import ConsumerGroupSpec, RetrySpec, TopicSpec, Topology
from kep.topology.settings import KafkaSettings
from shop.orders import OrderPlaced
from tests.support.kafka import read_records, read_topic, unique
from tests.support.runtime import Setup, produce_orders, running
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.embedded]

TTL_S = 1.0  # how long shipping remembers what it handled


class Outage(Exception):
    pass


def test_two_groups_on_one_topic_replay_reaches_only_the_group_that_dead_lettered(kafka: str) -> None:
    topic, billing, shipping = unique("orders"), unique("billing"), unique("shipping")
    topology = Topology(
        topics=(
            TopicSpec(name=topic, partitions=1, value_schema="kep.orders.OrderPlaced", key_field="order_id"),
        ),
        groups=(
            ConsumerGroupSpec(name=billing, topics=(topic,), retry=RetrySpec(delays=("200ms",))),
            ConsumerGroupSpec(name=shipping, topics=(topic,)),
        ),
    )
    settings = KafkaSettings(bootstrap_servers=kafka)
    admin.apply(admin.plan(topology, settings), settings)
    dlq = topology.group(billing).dlq_topic(topic)
    assert dlq is not None
    fixed = threading.Event()
    handled: dict[str, list[float]] = {billing: [], shipping: []}

    billing_app, shipping_app = App(billing, topics=[topic]), App(shipping, topics=[topic])

    @billing_app.handler(topic)
    def bill(event: OrderPlaced, ctx: MessageContext) -> None:
        if not fixed.is_set():
            raise Outage("the payment gateway is down")
        handled[billing].append(time.monotonic())

    @shipping_app.handler(topic)
    def ship(event: OrderPlaced, ctx: MessageContext) -> None:
        handled[shipping].append(time.monotonic())

    billing_setup, shipping_setup = (
        Setup(settings, topology, topic, billing),
        Setup(settings, topology, topic, shipping),
    )
    with (
        running(billing_app, billing_setup),
        running(shipping_app, shipping_setup, idempotency_ttl_s=TTL_S),
    ):
        [event] = produce_orders(billing_setup, 1)
        wait_until(lambda: handled[shipping], timeout=60, message="shipping handled the order")
        [dead] = read_records(kafka, dlq, 1, timeout=60)
        assert dead.key() == event.order_id.encode()
        shipped_at = handled[shipping][0]
        wait_until(
            lambda: time.monotonic() > shipped_at + TTL_S, timeout=10, message="shipping's key expired"
        )

        fixed.set()  # billing's fix is deployed: replay its dead letter
        start_replay_progress(settings, [dlq])
        result = replay(settings, dlq, topology=topology)

        assert (result.replayed, result.failed) == (1, 0)
        [retry] = topology.group(billing).retry_tiers(topic)
        assert result.target == retry.topic
        wait_until(lambda: handled[billing], timeout=60, message="billing handled the replayed order")

    # Nothing was written to the shared topic, so shipping had nothing to handle again, key expired or not.
    assert len(read_topic(kafka, topic)) == 1
    assert len(handled[shipping]) == 1
    assert len(handled[billing]) == 1
