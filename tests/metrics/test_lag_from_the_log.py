"""Lag read from the log with the real LagProbe.

A paused partition's frozen watermark is replaced by the true log end, lag in seconds is the age of the record
at the committed offset, and no commit means lag from the log start."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from kep.consumers.lag.probe import LagProbe
from kep.consumers.metrics import PartitionState, WorkerMetrics
from kep.topology.settings import KafkaSettings
from tests.metrics.support import StaticSource, sample, scrape

pytestmark = pytest.mark.integration


def test_paused_partition_lag_and_lag_seconds_come_from_the_log(
    kafka: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=3, prefix="lagmetrics")
    two_minutes_ago = int((time.time() - 120) * 1000)
    producer = Producer({"bootstrap.servers": kafka, "enable.idempotence": True})
    for i in range(10):
        producer.produce(topic, value=b"old-%d" % i, partition=0, timestamp=two_minutes_ago + i)
    for i in range(3):
        producer.produce(topic, value=b"new-%d" % i, partition=1)
    for i in range(2):
        producer.produce(topic, value=b"done-%d" % i, partition=2)
    assert producer.flush(10) == 0
    source = StaticSource(
        [
            # Paused after fetching up to offset 6: its watermark stays at 6 while the log grows to 10.
            PartitionState(topic, 0, committed=4, processed=6, log_end=6, paused=True),
            # Never committed, never fetched yet.
            PartitionState(topic, 1, committed=None, processed=None, log_end=None, paused=False),
            # Caught up.
            PartitionState(topic, 2, committed=2, processed=2, log_end=2, paused=False),
        ]
    )
    registry = CollectorRegistry()
    metrics = WorkerMetrics("billing", registry=registry)
    with LagProbe(KafkaSettings(bootstrap_servers=kafka)) as probe:
        metrics.bind(source, probe.probe, probe_timeout_s=10)
        started = time.time()
        samples = scrape(registry)

    def value(name: str, partition: int) -> float | None:
        return sample(samples, name, group="billing", topic=topic, partition=partition)

    assert value("kep_consumer_log_end_offset", 0) == 10
    assert value("kep_consumer_lag_messages", 0) == 6
    assert value("kep_consumer_processed_lag_messages", 0) == 4
    lag_seconds = value("kep_consumer_lag_seconds", 0)
    assert lag_seconds is not None and 120 <= lag_seconds <= 120 + (time.time() - started) + 5
    assert value("kep_consumer_log_end_offset", 1) == 3
    assert value("kep_consumer_lag_messages", 1) == 3
    fresh = value("kep_consumer_lag_seconds", 1)
    assert fresh is not None and 0 <= fresh < 60
    assert value("kep_consumer_lag_messages", 2) == 0
    assert value("kep_consumer_lag_seconds", 2) == 0
