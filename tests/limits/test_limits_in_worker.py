"""Limits inside one worker (in-process, real broker, real stores): per-key rates declared on the handler, the
metrics, and a limit store whose connections are reset under load."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from urllib.parse import urlsplit, urlunsplit

import pytest
from prometheus_client import CollectorRegistry

from kep.consumers.app import App
from kep.consumers.context import MessageContext
from kep.producers.producer import EventProducer
from shop.orders import OrderPlaced
from shop.samples import sample_events
from tests.limits.test_limits_across_replicas import most_in_window
from tests.support.kafka import read_records
from tests.support.proxy import ResettingProxy
from tests.support.runtime import Setup, applied_topology, running
from tests.support.services import require_redis
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.embedded]

CUSTOMERS = ("c-1", "c-2", "c-3")
PER_KEY_RATE = 10


def produce_for_customers(setup: Setup, per_customer: int) -> list[OrderPlaced]:
    base = [
        e
        for e in sample_events(per_customer * len(CUSTOMERS), seed=5, kind="orders")
        if isinstance(e, OrderPlaced)
    ]
    events = [e.model_copy(update={"customer_id": CUSTOMERS[i % len(CUSTOMERS)]}) for i, e in enumerate(base)]
    with EventProducer(setup.kafka, setup.topology) as producer:
        for event in events:
            producer.publish(event, topic=setup.topic)
        assert producer.flush(30) == 0
    return events


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return value if value is not None else 0.0


def test_a_per_key_rate_on_the_handler_limits_each_customer_alone(kafka: str) -> None:
    setup = applied_topology(kafka, partitions=3)
    events = produce_for_customers(setup, per_customer=30)
    app = App(setup.group, topics=[setup.topic])
    starts: dict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()

    @app.handler(setup.topic, rate=f"{PER_KEY_RATE}/s", per="customer_id")
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        with lock:
            starts[event.customer_id].append(time.time())

    with running(app, setup, concurrency="key", workers=4) as worker:
        wait_until(lambda: sum(map(len, starts.values())) >= len(events), timeout=60, message="every event")
        registry = worker.metrics.registry
    assert sorted(map(len, starts.values())) == [30, 30, 30], "an event was lost or run twice"
    for customer, times in starts.items():
        assert most_in_window(times, 1.0) <= PER_KEY_RATE + 1, customer  # burst 1 by default
    everyone = [t for times in starts.values() for t in times]
    assert most_in_window(everyone, 1.0) > PER_KEY_RATE + 1, "the customers shared one limit"
    labels = {"group": setup.group, "handler": handle.__qualname__}
    assert sample(registry, "kep_limit_rate_per_second", **labels) == PER_KEY_RATE
    assert sample(registry, "kep_limit_wait_seconds_count", **labels) == len(events)
    assert sample(registry, "kep_limit_held_total", **labels, limit="rate") > 0


def through(url: str, proxy: ResettingProxy) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{proxy.port}"))


@pytest.mark.slow
def test_a_limit_store_that_drops_its_connections_delays_but_loses_nothing(kafka: str) -> None:
    url = require_redis()
    setup = applied_topology(kafka, partitions=3, delays=(0.2,))
    events = produce_for_customers(setup, per_customer=100)
    app = App(setup.group, topics=[setup.topic])
    runs: list[str] = []

    @app.handler(setup.topic, rate="200/s", concurrency=2)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        runs.append(event.event_id)

    stop = threading.Event()
    host, port = urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port or 6379
    with ResettingProxy(host, port) as proxy:

        def chaos() -> None:
            rng = random.Random(3)
            while not stop.wait(rng.uniform(0.05, 0.2)):
                proxy.reset()

        breaker = threading.Thread(target=chaos, name="chaos", daemon=True)
        with running(app, setup, idempotency_store=through(url, proxy), idempotency_lease_s=5) as worker:
            breaker.start()
            try:
                wait_until(lambda: len(set(runs)) >= len(events), timeout=120, message="every event")
            finally:
                stop.set()
                breaker.join(5)
            registry = worker.metrics.registry
    assert sorted(set(runs)) == sorted(e.event_id for e in events)
    dlq = setup.spec.dlq_topic(setup.topic)
    assert dlq is not None
    assert read_records(kafka, dlq, 1, timeout=2) == [], "dead-lettered because of the limit store"
    labels = {"group": setup.group, "handler": handle.__qualname__}
    assert sample(registry, "kep_limit_store_errors_total", **labels) > 0, (
        "the outages missed the limit store"
    )


def test_messages_held_by_a_limit_do_not_use_up_the_in_flight_bound_of_other_topics(kafka: str) -> None:
    """The limited topic's backlog fills the worker's in-flight bound many times over; the unlimited topic of the
    same worker still gets through all of its own backlog while the limited one has done a fraction of its."""
    limited_setup = applied_topology(kafka, partitions=2)
    free_topic = limited_setup.topic + "-free"
    topology = limited_setup.topology.model_copy(
        update={
            "topics": (
                *limited_setup.topology.topics,
                limited_setup.topology.topics[0].model_copy(update={"name": free_topic}),
            ),
            "groups": (limited_setup.spec.model_copy(update={"topics": (limited_setup.topic, free_topic)}),),
        }
    )
    from kep.topology import admin

    admin.apply(admin.plan(topology, limited_setup.kafka), limited_setup.kafka)
    setup = Setup(limited_setup.kafka, topology, limited_setup.topic, limited_setup.group)
    events = [e for e in sample_events(1200, seed=9, kind="orders") if isinstance(e, OrderPlaced)]
    with EventProducer(setup.kafka, setup.topology) as producer:
        for event in events[:600]:
            producer.publish(event, topic=setup.topic)
        for event in events[600:]:
            producer.publish(event, topic=free_topic)
        assert producer.flush(30) == 0
    app = App(setup.group, topics=[setup.topic, free_topic])
    limited_runs: list[str] = []
    free_runs: list[str] = []

    @app.handler(setup.topic, rate="20/s")
    def slow(event: OrderPlaced, ctx: MessageContext) -> None:
        limited_runs.append(event.event_id)

    @app.handler(free_topic)
    def fast(event: OrderPlaced, ctx: MessageContext) -> None:
        free_runs.append(event.event_id)

    with running(app, setup, max_in_flight=100):
        wait_until(lambda: len(free_runs) >= 600, timeout=20, message="the unlimited topic's backlog")
        assert len(limited_runs) < 300, "the limited topic was not held back"
    assert sorted(free_runs) == sorted(e.event_id for e in events[600:])
