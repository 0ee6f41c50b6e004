"""Delayed events: 5,000 events due 1 s to 10 min after they are published, through the default delay tiers
(1s 5s 30s 2m 10m 1h 6h 1d), a delay forwarder and a worker, as ``kep run`` runs them.

Lateness = the time the handler ran - the event's due time. None may be early (target: 0 early events);
target p99 <= 1 s. ``--quick`` publishes 500 events due 1 to 30 s ahead. ``KEP_BENCH_DELAYED_MAX_S`` shortens
the range of a full run (the run takes a little longer than the longest delay).
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from bench.consumer import FAST_JOIN
from bench.context import BenchContext
from bench.result import Result
from kep.consumers.app import App
from kep.consumers.context import MessageContext
from kep.consumers.delays import DelayForwarder
from kep.consumers.runtime.build import build_worker
from kep.consumers.settings import ConsumerSettings
from kep.producers import EventProducer
from kep.producers.delay import due_time_ms
from kep.topology import ConsumerGroupSpec, DelaySpec, KafkaSettings, TopicSpec, Topology, admin
from shop.samples import sample_events

PARTITIONS = 6


def _topology(name: str, group: str) -> Topology:
    spec = TopicSpec(
        name=name, partitions=PARTITIONS, value_schema="kep.orders.OrderPlaced", key_field="order_id"
    )
    delays = DelaySpec(prefix=f"{name}.delay", partitions=3, group=f"{group}-delays")
    return Topology(topics=(spec,), groups=(ConsumerGroupSpec(name=group, topics=(name,)),), delays=delays)


def _publish(
    kafka: KafkaSettings, topology: Topology, topic: str, count: int, max_s: float
) -> dict[str, int]:
    rng = random.Random(5)
    events = sample_events(count, seed=9, kind="orders")
    due: dict[str, int] = {}
    with EventProducer(kafka, topology) as producer:
        start_ms = time.time_ns() // 1_000_000
        for event in events:
            at = datetime.fromtimestamp((start_ms + round(rng.uniform(1.0, max_s) * 1000)) / 1000, tz=UTC)
            producer.publish(event, topic=topic, deliver_at=at, on_delivery=_ok)
            due[event.event_id] = due_time_ms(at, None, 0) or 0
        producer.flush(60)
    return due


def _ok(report: Any, error: Any) -> None:
    if error is not None:
        raise RuntimeError(str(error))


def run(ctx: BenchContext) -> list[Result]:
    count = ctx.scale(5000, 500)
    max_s = ctx.scale(int(float(os.environ.get("KEP_BENCH_DELAYED_MAX_S", "600"))), 30)
    topic, group = f"bench-delayed-{uuid.uuid4().hex[:8]}", f"delayed-{uuid.uuid4().hex[:8]}"
    topology = _topology(topic, group)
    kafka = KafkaSettings(bootstrap_servers=ctx.bootstrap_servers)
    admin.apply(admin.plan(topology, kafka), kafka)
    app = App(group, topics=[topic])
    handled: dict[str, int] = {}
    lock, done = threading.Lock(), threading.Event()

    @app.handler(topic)
    def handle(event: Any, context: MessageContext) -> None:
        now = time.time_ns() // 1_000_000
        with lock:
            handled.setdefault(event.event_id, now)
            if len(handled) >= count:
                done.set()

    settings = ConsumerSettings(
        **FAST_JOIN, metrics_enabled=False, metrics_port=0, idempotency_store="memory://"
    )
    worker = build_worker(app, settings, kafka, topology=topology, probe=False)
    forwarder = DelayForwarder(topology, kafka, group_config=settings.group_config())
    threads = [threading.Thread(target=worker.run, daemon=True), forwarder.start()]
    threads[0].start()
    joined = time.monotonic() + 120  # measure forwarding, not the groups' first join
    while not (worker.health.ready()[0] and forwarder.assigned) and time.monotonic() < joined:
        time.sleep(0.1)  # sleep-ok: the polling interval of a bounded wait
    due = _publish(kafka, topology, topic, count, max_s)
    done.wait(max_s + 120)
    forwarder.stop()
    worker.stop()
    for thread in threads:
        thread.join(60)
    lateness = sorted(handled[e] - due[e] for e in handled)
    early = sum(1 for late in lateness if late < 0)

    def pct(p: float) -> float:
        return float(lateness[min(len(lateness) - 1, int(p * len(lateness)))]) if lateness else float("nan")

    note = f"{count:,} events due 1 s to {max_s:g} s ahead, default tiers, {PARTITIONS} partitions"
    return [
        ctx.result("handled", len(handled), "events", target=float(count), note=note),
        ctx.result("handled before due (must be 0)", early, "events", target=0.0, better="lower"),
        ctx.result("delayed lateness p50", pct(0.5), "ms", better="lower"),
        ctx.result("delayed lateness p99", pct(0.99), "ms", target=1000.0, better="lower"),
        ctx.result("delayed lateness max", lateness[-1] if lateness else float("nan"), "ms", better="lower"),
    ]
