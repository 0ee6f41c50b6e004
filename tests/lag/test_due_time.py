"""Lag in seconds of a retry topic counts from each record's due time; the worker and the exporter agree."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from kep.consumers.lag.due import is_retry_topic, lag_start_ms
from kep.consumers.lag.monitor import LagMonitor
from kep.consumers.lag.probe import LagProbe
from kep.consumers.metrics import PartitionState, WorkerMetrics
from kep.producers.headers import DUE_TIME
from tests.lag.support import commit, now_ms, settings
from tests.metrics.support import StaticSource, sample, scrape
from tests.support.kafka import create_topic, unique

MINUTE_MS = 60_000


@pytest.mark.unit
def test_only_retry_topics_honour_the_due_time() -> None:
    due = [(DUE_TIME, b"5000")]
    assert lag_start_ms("orders.billing.retry.1h", 1000, due) == 5000
    assert (
        lag_start_ms("orders.billing.retry.30s", None, due) == 5000
    )  # no timestamp, the due time still counts
    assert lag_start_ms("orders", 1000, due) == 1000  # a header on a main topic cannot hide lag
    assert lag_start_ms("orders.billing.dlq", 1000, due) == 1000
    assert (
        lag_start_ms("orders.billing.retry.1h", 1000, [(DUE_TIME, b"soon")]) == 1000
    )  # unreadable: write time
    assert lag_start_ms("orders.billing.retry.1h", 1000, None) == 1000
    assert (
        is_retry_topic("a.b.retry.10s") and not is_retry_topic("retry.10s") and not is_retry_topic("orders")
    )


def _retry_topic(kafka: str, delay: str) -> str:
    return create_topic(kafka, f"{unique('orders')}.{unique('g')}.retry.{delay}", 1)


@pytest.mark.integration
@pytest.mark.embedded
def test_a_retry_that_is_not_due_has_no_lag_in_seconds_and_a_due_one_counts_from_its_due_time(
    kafka: str,
) -> None:
    hour_tier = _retry_topic(kafka, "1h")
    half_minute_tier = _retry_topic(kafka, "30s")
    now = now_ms()
    producer = Producer({"bootstrap.servers": kafka})
    # Written 20 minutes ago into the 1 h tier: due in 40 minutes, not late at all.
    producer.produce(
        hour_tier, b"v", b"k", timestamp=now - 20 * MINUTE_MS, headers=[(DUE_TIME, str(now + 40 * MINUTE_MS))]
    )
    # Written 10 minutes ago into the 30 s tier and due 9.5 minutes ago: late since its due time, not its write.
    due_then = now - 9 * MINUTE_MS - 30_000
    producer.produce(
        half_minute_tier, b"v", b"k", timestamp=now - 10 * MINUTE_MS, headers=[(DUE_TIME, str(due_then))]
    )
    assert producer.flush(10) == 0
    group = unique("g")
    commit(kafka, group, {(hour_tier, 0): 0, (half_minute_tier, 0): 0})

    with LagProbe(settings(kafka)) as probe:
        answers = probe.probe({(hour_tier, 0): 0, (half_minute_tier, 0): 0})
        assert answers[(hour_tier, 0)].next_timestamp_ms == now + 40 * MINUTE_MS
        assert answers[(half_minute_tier, 0)].next_timestamp_ms == due_then

        registry = CollectorRegistry()
        metrics = WorkerMetrics(group, registry=registry)
        states = [
            PartitionState(t, 0, committed=0, processed=None, log_end=1, paused=True)
            for t in (hour_tier, half_minute_tier)
        ]
        metrics.bind(StaticSource(states), probe.probe, probe_timeout_s=10)
        started = time.time()
        samples = scrape(registry)

    def worker(name: str, topic: str) -> float | None:
        return sample(samples, name, group=group, topic=topic, partition=0)

    assert worker("kep_consumer_lag_messages", hour_tier) == 1  # the retry backlog stays visible
    assert worker("kep_consumer_lag_seconds", hour_tier) == 0
    late = worker("kep_consumer_lag_seconds", half_minute_tier)
    assert late is not None and 570 <= late <= 570 + (time.time() - started) + 5

    with LagMonitor(settings(kafka), group_filter=group) as monitor:
        (lag,) = monitor.poll().groups
    by_topic = {p.topic: p for p in lag.partitions}
    assert (by_topic[hour_tier].lag_messages, by_topic[hour_tier].lag_seconds) == (1, 0.0)
    exported = by_topic[half_minute_tier].lag_seconds
    assert exported is not None and abs(exported - late) < 10  # the exporter and the worker agree
