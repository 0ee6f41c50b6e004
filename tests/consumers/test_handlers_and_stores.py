"""Async handlers, handlers per event type, static membership settings, and a store that goes away."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from kep.consumers.app import App
from kep.consumers.context import MessageContext
from kep.consumers.errors import IdempotencyStoreError
from kep.consumers.idempotency.base import ClaimState
from kep.consumers.idempotency.memory import MemoryStore
from kep.consumers.runtime.build import build_worker
from kep.producers import EventProducer
from kep.topology import KafkaSettings, admin, load_topology, schema_registry
from shop.orders import OrderPlaced
from tests.support.kafka import unique
from tests.support.runtime import Setup, applied_topology, produce_orders, running, settings
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def test_async_handlers_run_on_the_event_loop(kafka: str) -> None:
    setup = applied_topology(kafka, partitions=2)
    events = produce_orders(setup, 50)
    app = App(setup.group, topics=[setup.topic])
    seen: list[str] = []

    @app.handler(event=OrderPlaced)
    async def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        await asyncio.sleep(0)  # sleep-ok: an await point, as a real async handler has
        assert asyncio.get_running_loop() is not None
        seen.append(event.event_id)

    with running(app, setup):
        wait_until(lambda: len(seen) == len(events), timeout=30, message="async handler ran for every event")
    assert sorted(seen) == sorted(e.event_id for e in events)


def test_a_worker_reads_the_topology_schemas_into_models_built_from_them(
    kafka: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEP_SCHEMAS")  # only the topology's own schemas:
    (tmp_path / "events").mkdir()
    schema = {
        "type": "record", "name": "StockReserved", "namespace": "acme.tests.stock",
        "fields": [
            {"name": "event_id", "type": "string"},
            {"name": "occurred_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "sku", "type": "string"},
            {"name": "quantity", "type": "int"},
        ],
    }  # fmt: skip
    (tmp_path / "events" / "acme.tests.stock.StockReserved.v1.avsc").write_text(json.dumps(schema))
    topic, group = unique("stock"), unique("grp")
    (tmp_path / "topology.yaml").write_text(
        f"schemas: events\ntopics:\n  - {{name: {topic}, partitions: 2, value_schema: acme.tests.stock.StockReserved,"
        f" key_field: sku}}\ngroups:\n  - {{name: {group}, topics: [{topic}]}}\n"
    )
    topology = load_topology(tmp_path / "topology.yaml", check_schemas=True)
    kafka_settings = KafkaSettings(bootstrap_servers=kafka)
    admin.apply(admin.plan(topology, kafka_settings), kafka_settings)
    model = schema_registry(topology).model("acme.tests.stock.StockReserved")
    events = [model(sku=f"S-{n % 3}", quantity=n) for n in range(12)]
    with EventProducer(kafka_settings, topology) as producer:
        for event in events:
            producer.publish(event)
        assert producer.flush(30) == 0
    app = App(group)
    seen: list[Any] = []

    @app.handler(event="acme.tests.stock.StockReserved")
    def reserve(event: Any, ctx: MessageContext) -> None:
        seen.append(event)

    setup = Setup(kafka_settings, topology, topic, group)
    with running(app, setup):
        wait_until(lambda: len(seen) == len(events), timeout=30, message="every reservation handled")
    assert {type(event) for event in seen} == {model}
    assert sorted(e.quantity for e in seen) == list(range(12))


def test_a_static_member_consumes(kafka: str) -> None:
    """group.instance.id is passed to the client; the embedded broker accepts a static member's join (it only
    fails to reassign a closed static member's partitions, which this test does not rely on)."""
    setup = applied_topology(kafka, partitions=1)
    events = produce_orders(setup, 10)
    app = App(setup.group, topics=[setup.topic])
    seen: list[str] = []

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        seen.append(event.event_id)

    with running(app, setup, group_instance_id="billing-0") as worker:
        assert worker.plan.consumer_config()["group.instance.id"] == "billing-0"
        wait_until(lambda: len(seen) == len(events), timeout=30, message="static member handled all")


class FlakyStore(MemoryStore):
    """A store that is unreachable until ``back`` is set; counts the claims it refused."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.back = threading.Event()
        self.refused = 0

    def claim(self, key: str) -> ClaimState:
        if not self.back.is_set():
            self.refused += 1
            raise IdempotencyStoreError("store unreachable (injected)")
        return super().claim(key)


def test_an_unreachable_store_is_waited_out_never_skipped(kafka: str) -> None:
    setup = applied_topology(kafka, partitions=1)
    events = produce_orders(setup, 20)
    app = App(setup.group, topics=[setup.topic])
    handled: Counter[str] = Counter()
    lock = threading.Lock()

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        with lock:
            handled[event.event_id] += 1

    store = FlakyStore(setup.group, ttl_s=3600, lease_s=30)
    worker = build_worker(app, settings(), setup.kafka, topology=setup.topology, store=store, probe=False)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_until(
            lambda: store.refused >= 3, timeout=30, message="the worker asked the store again and again"
        )
        assert sum(handled.values()) == 0, "handled while the store could not be asked"
        store.back.set()
        wait_until(
            lambda: len(handled) == len(events), timeout=30, message="all handled once the store is back"
        )
    finally:
        store.back.set()
        worker.stop()
        thread.join(30)
    assert set(handled.values()) == {1}
