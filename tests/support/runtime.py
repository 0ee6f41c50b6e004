"""Helpers for runtime tests: a unique applied topology, produced orders, a worker in a thread."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from kep.consumers.app import App
from kep.consumers.runtime.build import build_worker
from kep.consumers.runtime.worker import Worker
from kep.consumers.settings import ConsumerSettings
from kep.producers.producer import EventProducer
from kep.topology import admin
from kep.topology.model import ConsumerGroupSpec, RetrySpec, TopicSpec, Topology
from kep.topology.settings import KafkaSettings
from shop.orders import OrderPlaced
from shop.samples import sample_events
from tests.support.kafka import unique

FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "fetch_wait_max_ms": 10}


@dataclass(frozen=True)
class Setup:
    kafka: KafkaSettings
    topology: Topology
    topic: str
    group: str

    @property
    def spec(self) -> ConsumerGroupSpec:
        return self.topology.group(self.group)


def applied_topology(
    bootstrap: str,
    *,
    partitions: int = 3,
    delays: Sequence[float] = (),
    mode: str = "topics",
    dead_letter: bool = True,
    max_attempts: int | None = None,
    fatal: Sequence[str] = (),
) -> Setup:
    topic, group = unique("orders"), unique("grp")
    retry = RetrySpec(
        delays=tuple(f"{round(d * 1000)}ms" for d in delays),
        mode=mode,
        dead_letter=dead_letter,
        max_attempts=max_attempts,
        fatal_exceptions=tuple(fatal),
    )
    topology = Topology(
        topics=(
            TopicSpec(
                name=topic, partitions=partitions, value_schema="kep.orders.OrderPlaced", key_field="order_id"
            ),
        ),
        groups=(ConsumerGroupSpec(name=group, topics=(topic,), retry=retry),),
    )
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    admin.apply(admin.plan(topology, kafka), kafka)
    return Setup(kafka, topology, topic, group)


def produce_orders(setup: Setup, n: int, *, seed: int = 0) -> list[OrderPlaced]:
    events = [e for e in sample_events(n, seed=seed, kind="orders") if isinstance(e, OrderPlaced)]
    with EventProducer(setup.kafka, setup.topology) as producer:
        for event in events:
            producer.publish(event, topic=setup.topic, on_delivery=_ignore)
        assert producer.flush(30) == 0
    return events


def _ignore(report: Any, error: Any) -> None:
    assert error is None, error


def settings(**overrides: Any) -> ConsumerSettings:
    values: dict[str, Any] = {
        **FAST_GROUP,
        "metrics_port": 0,
        "idempotency_store": "memory://",
        "commit_interval_s": 0.2,
    }
    values.update(overrides)
    return ConsumerSettings(**values)


@contextlib.contextmanager
def running(app: App, setup: Setup, *, probe: bool = False, **overrides: Any) -> Iterator[Worker]:
    """A worker for ``app`` in a background thread; stopped (drained, committed) on exit."""
    worker = build_worker(app, settings(**overrides), setup.kafka, topology=setup.topology, probe=probe)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            worker.run()
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)

    thread = threading.Thread(target=target, name="kep-test-worker", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(60)
        assert not thread.is_alive(), "worker did not stop within 60 s"
        if errors:
            raise errors[0]
