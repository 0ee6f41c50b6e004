"""Consumer throughput: the at-least-once path against a raw confluent-kafka loop, and key-ordered workers.

* ``raw``: a plain ``Consumer`` (subscribe, ``consume(500)``, fastavro decode of each value to a dict, a
  synchronous commit per batch): the baseline.
* ``kep``: a ``kep`` worker with a no-op handler: decode into the typed event, in-memory idempotency (claim and
  complete per event), batched asynchronous commits. Metrics disabled. Target ``kep >= 1.0 x raw``.
* ``kep + metrics``: the same with metrics enabled; target ``>= 0.95 x kep`` (metrics cost < 5 %).

Each trial reads the same pre-produced topic with a fresh group and is timed from its first to its last
message, so the group join (seconds on the embedded broker) is left out of both.

Key-ordered mode: a handler that waits 10 ms on I/O, one message at a time per partition against key-ordered
workers; target ``>= 20 x``. Peak RSS of this process is reported after the runs.
"""

from __future__ import annotations

import io
import threading
import time
import uuid
from typing import Any

import fastavro
from confluent_kafka import Consumer, Producer

from bench.context import BenchContext
from bench.proc import peak_rss_of_pid
from bench.result import Result
from bench.stats import Timing, median
from kep.consumers.app import App
from kep.consumers.context import MessageContext
from kep.consumers.runtime.build import build_worker
from kep.consumers.settings import ConsumerSettings
from kep.producers import headers as h
from kep.schemas.codec import codec_for
from kep.schemas.registry import LocalSchemaRegistry
from kep.topology import ConsumerGroupSpec, KafkaSettings, TopicSpec, Topology
from shop.samples import sample_events

PARTITIONS = 6
FAST_JOIN = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "fetch_wait_max_ms": 10}


def _produce(ctx: BenchContext, topic: str, count: int, keys: int | None = None) -> None:
    codec = codec_for()
    events = sample_events(min(count, 5000), seed=3, kind="orders")
    producer = Producer(ctx.kafka_conf(linger_ms=5, enable_idempotence=True))
    for i in range(count):
        event = events[i % len(events)].model_copy(update={"event_id": str(uuid.UUID(int=i))})
        key = f"k{i % keys}" if keys else getattr(event, "order_id", None)
        headers = [(h.EVENT_TYPE, event.avro_name.encode()), (h.IDEMPOTENCY_KEY, event.event_id.encode())]
        while True:
            try:
                producer.produce(topic, codec.encode(event), key, headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(60) == 0


def _topology(topic: str, group: str) -> Topology:
    spec = TopicSpec(
        name=topic, partitions=PARTITIONS, value_schema="kep.orders.OrderPlaced", key_field="order_id"
    )
    return Topology(topics=(spec,), groups=(ConsumerGroupSpec(name=group, topics=(topic,)),))


def _raw_trial(ctx: BenchContext, topic: str, count: int) -> Timing:
    version = LocalSchemaRegistry.default().latest("kep.orders.OrderPlaced")
    schema = version.parsed
    consumer = Consumer(
        ctx.kafka_conf(
            group_id=f"raw-{uuid.uuid4().hex[:8]}", auto_offset_reset="earliest", enable_auto_commit=False,
            session_timeout_ms=6000, heartbeat_interval_ms=1000, fetch_wait_max_ms=10,
        )
    )  # fmt: skip
    consumer.subscribe([topic])
    seen, start = 0, 0.0
    try:
        while seen < count:
            batch = consumer.consume(500, 0.1)
            if not batch:
                continue
            if not start:
                start = time.perf_counter()
            for msg in batch:
                if msg.error() is None:
                    fastavro.schemaless_reader(io.BytesIO(msg.value()[10:]), schema, None)  # type: ignore[index]
                    seen += 1
            consumer.commit(asynchronous=False)
        return Timing(count, time.perf_counter() - start)
    finally:
        consumer.close()


def _kep_trial(ctx: BenchContext, topic: str, count: int, *, metrics: bool, wait_ms: float = 0.0,
               concurrency: str = "partition") -> Timing:  # fmt: skip
    group = f"kep-{uuid.uuid4().hex[:8]}"
    app = App(group, topics=[topic])
    done = threading.Event()
    seen = [0]
    first = [0.0]
    lock = threading.Lock()

    @app.handler(topic)
    def handle(event: Any, context: MessageContext) -> None:
        if wait_ms:
            time.sleep(wait_ms / 1000)  # stands in for I/O
        with lock:
            if not seen[0]:
                first[0] = time.perf_counter()
            seen[0] += 1
            if seen[0] >= count:
                done.set()

    settings = ConsumerSettings(
        **FAST_JOIN, metrics_enabled=metrics, metrics_port=0, idempotency_store="memory://",
        concurrency=concurrency, workers=32, max_in_flight=5000,
    )  # fmt: skip
    kafka = KafkaSettings(bootstrap_servers=ctx.bootstrap_servers)
    worker = build_worker(app, settings, kafka, topology=_topology(topic, group), probe=False)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    done.wait(600)
    elapsed = time.perf_counter() - first[0]
    worker.stop()
    thread.join(60)
    return Timing(count, elapsed)


def rates(ctx: BenchContext, trials: dict[str, list[Timing]], note: str) -> list[Result]:
    """One events/s figure per variant: the median over its trials, every trial kept as a sample."""
    return [
        ctx.result(
            name,
            median([t.per_second for t in ts]),
            "events/s",
            samples=[t.per_second for t in ts],
            note=note,
        )
        for name, ts in trials.items()
    ]


def _ratios(a: list[Timing], b: list[Timing]) -> list[float]:
    return [x.per_second / y.per_second for x, y in zip(a, b, strict=True)]


def run(ctx: BenchContext) -> list[Result]:
    count = ctx.scale(100_000, 10_000)
    repeats = ctx.scale(3, 1)
    topic = ctx.topic(PARTITIONS, prefix="bench-consume")
    _produce(ctx, topic, count)
    trials = ctx.interleaved(
        {
            "raw": lambda: _raw_trial(ctx, topic, count),
            "kep": lambda: _kep_trial(ctx, topic, count, metrics=False),
            "kep + metrics": lambda: _kep_trial(ctx, topic, count, metrics=True),
        },
        repeats,
    )
    ours, raw, with_metrics = trials["kep"], trials["raw"], trials["kep + metrics"]
    ratio, metrics_ratio = _ratios(ours, raw), _ratios(with_metrics, ours)
    note = f"{repeats} x {count:,} OrderPlaced, {PARTITIONS} partitions"
    results = rates(ctx, trials, note)
    results.append(ctx.result("kep / raw", median(ratio), "x", target=1.0, samples=ratio))
    results.append(
        ctx.result("kep + metrics / kep", median(metrics_ratio), "x", target=0.95, samples=metrics_ratio)
    )
    results += _key_ordered(ctx)
    rss = peak_rss_of_pid(__import__("os").getpid())
    if rss:
        results.append(ctx.result("peak RSS of the bench process", rss / 2**20, "MiB", better="lower"))
    return results


def _key_ordered(ctx: BenchContext) -> list[Result]:
    partitions = 2
    topic = ctx.topic(partitions, prefix="bench-keyed")
    slow_count, fast_count = ctx.scale(300, 100), ctx.scale(3000, 1000)
    _produce(ctx, topic, fast_count + slow_count, keys=500)
    one_at_a_time = _kep_trial(ctx, topic, slow_count, metrics=False, wait_ms=10)
    keyed = _kep_trial(ctx, topic, fast_count, metrics=False, wait_ms=10, concurrency="key")
    note = f"handler waits 10 ms; {partitions} partitions, 500 keys, 32 workers per partition"
    return [
        ctx.result(
            "one at a time per partition (10 ms handler)", one_at_a_time.per_second, "events/s", note=note
        ),
        ctx.result("key-ordered (10 ms handler)", keyed.per_second, "events/s", note=note),
        ctx.result(
            "key-ordered / one at a time", keyed.per_second / one_at_a_time.per_second, "x", target=20.0
        ),
    ]
