"""A topology with an orders topic, a group with fast retries and dead letters, and a topic for BatchCompleted."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from kep.consumers.status import StatusView, open_status_store
from kep.producers.producer import EventProducer
from kep.topology import admin
from kep.topology.model import ConsumerGroupSpec, RetrySpec, TopicSpec, Topology
from kep.topology.settings import KafkaSettings
from shop.orders import LineItem, OrderPlaced
from tests.support.kafka import unique
from tests.support.runtime import Setup


def batch_setup(
    bootstrap: str, *, partitions: int = 3, delays: Sequence[str] = ("300ms",)
) -> tuple[Setup, str]:
    """(setup, the BatchCompleted topic), applied on the broker."""
    topic, group, done = unique("orders"), unique("grp"), unique("batches-done")
    topology = Topology(
        topics=(
            TopicSpec(name=topic, partitions=partitions, value_schema="kep.orders.OrderPlaced", key_field="order_id"),
            TopicSpec(name=done, partitions=1, value_schema="kep.batches.BatchCompleted", key_field="batch_id"),
        ),
        groups=(
            ConsumerGroupSpec(
                name=group, topics=(topic,), retry=RetrySpec(delays=tuple(delays), dead_letter=True,
                                                            fatal_exceptions=("tests.apps.batches.PermanentError",)),
            ),
        ),
    )  # fmt: skip
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    admin.apply(admin.plan(topology, kafka), kafka)
    return Setup(kafka, topology, topic, group), done


def orders(n: int, prefix: str = "o") -> list[OrderPlaced]:
    item = LineItem(sku="SKU-1", quantity=1, unit_price_cents=100)
    return [
        OrderPlaced(
            order_id=f"{prefix}-{i}", customer_id="c-1", items=[item], amount_cents=100, currency="EUR"
        )
        for i in range(n)
    ]


def publish_batch(setup: Setup, events: list[OrderPlaced], batch_id: str) -> None:
    with EventProducer(setup.kafka, setup.topology) as producer:
        producer.publish_batch(events, batch_id=batch_id)


@contextmanager
def status_view(url: str) -> Iterator[StatusView]:
    view = StatusView(open_status_store(url))
    try:
        yield view
    finally:
        view.close()


def app_env(setup: Setup, **extra: Any) -> dict[str, str]:
    env = {"KEP_TEST_TOPIC": setup.topic, "KEP_TEST_GROUP": setup.group}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def set_env(env: dict[str, str]) -> None:
    os.environ.update(env)
