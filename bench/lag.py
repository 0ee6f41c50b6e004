"""Lag exporter: scrape time and poll duration for 50 groups x 20 partitions.

Set-up on the bench broker: one 20-partition topic per group, a few records per partition with timestamps in
the past, and each group committed on its topic (half the partitions caught up, half lagging, so the probe
reads records as well as end-of-partition events). The exporter polls (timed: ``poll duration``), then the
registry is rendered ``generate_latest`` N times (timed: ``scrape``, target < 100 ms). A scrape reads the
last snapshot only, so it must not depend on the cluster at all.

Baseline, same run: the same number of samples held in stock ``prometheus_client`` Gauges with labels, the
cheapest way the client offers to expose them; ``scrape / stock gauges`` shows what the custom collector
costs on top.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from bench.context import BenchContext
from bench.result import Result
from bench.stats import Timing, median, timed
from kep.consumers.lag import STATUSES, LagExporter, LagSnapshot
from kep.topology.settings import KafkaSettings

SCRAPE_TARGET_MS = 100.0
RECORDS_PER_PARTITION = 10


def _load(ctx: BenchContext, groups: int, partitions: int) -> tuple[str, list[str]]:
    """Create the topics, write the records, commit the groups; returns the group prefix and the topics."""
    prefix = f"bench-lag-{time.time_ns() % 10**9}"
    topics = [ctx.topic(partitions, prefix="bench-lag") for _ in range(groups)]
    producer = Producer(ctx.kafka_conf(linger_ms=5))
    past = int(time.time() * 1000) - 30_000
    for topic in topics:
        for partition in range(partitions):
            for i in range(RECORDS_PER_PARTITION):
                producer.produce(topic, b"x" * 100, partition=partition, timestamp=past + i)
        producer.poll(0)
    producer.flush(60)
    for index, topic in enumerate(topics):
        consumer = Consumer(ctx.kafka_conf(group_id=f"{prefix}-{index:03d}", enable_auto_commit=False))
        offsets = [
            TopicPartition(topic, p, RECORDS_PER_PARTITION if p % 2 else RECORDS_PER_PARTITION // 2)
            for p in range(partitions)
        ]
        consumer.commit(offsets=offsets, asynchronous=False)
        consumer.close()
    return prefix, topics


def _stock_registry(snapshot: LagSnapshot) -> CollectorRegistry:
    """The exporter's partition and status samples, in plain labelled Gauges."""
    registry = CollectorRegistry()
    labels = ["group", "topic", "partition"]
    gauges = [
        Gauge(f"stock_{n}", n, labels, registry=registry) for n in ("lag", "seconds", "committed", "end")
    ]
    status = Gauge("stock_status", "status", [*labels, "status"], registry=registry)
    group_status = Gauge("stock_group_status", "status", ["group", "status"], registry=registry)
    for group in snapshot.groups:
        for p in group.partitions:
            key = (group.group, p.topic, str(p.partition))
            for gauge, v in zip(gauges, (p.lag_messages, p.lag_seconds, p.committed, p.log_end), strict=True):
                gauge.labels(*key).set(v or 0)
            status.labels(*key, p.status.value).set(1)
        for s in STATUSES:
            group_status.labels(group.group, s.value).set(1 if group.status is s else 0)
    return registry


def _scrapes(registry: CollectorRegistry, count: int) -> Timing:
    def body() -> None:
        for _ in range(count):
            generate_latest(registry)

    return timed(count, body)


def run(ctx: BenchContext) -> list[Result]:
    groups, partitions = ctx.scale(50, 5), ctx.scale(20, 4)
    scrapes, rounds = ctx.scale(20, 3), ctx.scale(5, 2)
    prefix, _ = _load(ctx, groups, partitions)
    registry = CollectorRegistry()
    kafka = KafkaSettings(bootstrap_servers=ctx.bootstrap_servers)
    with LagExporter(kafka, group_filter=f"{prefix}-.*", registry=registry, poll_interval_s=60) as exporter:
        polls = [exporter.poll_once() for _ in range(rounds)]
    snapshot = polls[-1]
    seen = sum(len(g.partitions) for g in snapshot.groups)
    if snapshot.error or seen != groups * partitions:
        raise RuntimeError(
            f"exporter saw {seen} partitions, expected {groups * partitions}: {snapshot.error}"
        )
    lagging = sum(1 for g in snapshot.groups for p in g.partitions if p.lag_messages)
    body = generate_latest(registry)
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    stock = _stock_registry(snapshot)
    trials = ctx.interleaved(
        {"exporter": lambda: _scrapes(registry, scrapes), "stock": lambda: _scrapes(stock, scrapes)}, rounds
    )
    ms = {name: median([t.seconds / t.count * 1000 for t in ts]) for name, ts in trials.items()}
    size = f"{groups} groups x {partitions} partitions"
    return [
        ctx.result(
            f"scrape ({size})",
            ms["exporter"],
            "ms",
            target=SCRAPE_TARGET_MS,
            better="lower",
            samples=[t.seconds / t.count * 1000 for t in trials["exporter"]],
            note=f"{series} series, {len(body) // 1024} KiB per scrape",
        ),
        ctx.result("scrape / stock gauges", ms["exporter"] / ms["stock"], "x", better="lower"),
        ctx.sampled(
            f"poll duration ({size})",
            [p.duration_s for p in polls],
            "s",
            better="lower",
            note=f"first poll {polls[0].duration_s:.2f}s; {lagging} lagging partitions probed for timestamps",
        ),
    ]
