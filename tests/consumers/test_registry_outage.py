"""A schema registry outage makes the worker wait and retry; it never dead-letters the good records."""

from __future__ import annotations

import threading

import pytest

from kep.consumers.app import App
from kep.consumers.context import MessageContext
from kep.producers import EventProducer
from kep.schemas import ConfluentCodec, SchemaRegistrySettings
from shop.orders import OrderPlaced
from shop.samples import sample_events
from tests.support.kafka import read_topic
from tests.support.runtime import applied_topology, running
from tests.support.schema_registry import RegistryServer
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def test_the_worker_waits_for_the_registry_instead_of_dead_lettering(
    kafka: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEP_SCHEMA_REGISTRY_MAX_RETRIES", "0")
    setup = applied_topology(kafka, partitions=2, delays=(0.2,))
    events = [e for e in sample_events(6, seed=3, kind="orders") if isinstance(e, OrderPlaced)]
    handled: set[str] = set()
    lock = threading.Lock()
    app = App(setup.group, topics=[setup.topic])

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        with lock:
            handled.add(event.event_id)

    with RegistryServer() as registry:
        codec = ConfluentCodec.from_settings(registry.url, SchemaRegistrySettings(max_retries=0))
        with EventProducer(setup.kafka, setup.topology, codec=codec) as producer:
            for event in events:
                producer.publish_and_wait(event, topic=setup.topic)
        schema_id = int(codec.schema_ref(OrderPlaced, setup.topic).removeprefix("sr:"))
        codec.close()
        registry.down = True  # the worker's first lookup of the writer schema fails, and the next ones
        with running(app, setup, schema_registry_url=registry.url):
            wait_until(
                lambda: registry.count("GET", f"/schemas/ids/{schema_id}") >= 3,
                timeout=60,
                message="the worker asks the registry again while it is down",
            )
            assert handled == set()
            registry.down = False
            wait_until(lambda: len(handled) == len(events), timeout=60, message="every event handled")
    dlq = setup.spec.dlq_topic(setup.topic)
    assert dlq is not None
    assert read_topic(kafka, dlq) == []
    assert handled == {e.event_id for e in events}
