"""Known offsets on the broker: records with chosen timestamps, and group commits at chosen offsets."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from kep.topology.settings import KafkaSettings


def settings(bootstrap: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=bootstrap)


def now_ms() -> int:
    return int(time.time() * 1000)


def produce(
    bootstrap: str, topic: str, partition: int, timestamps_ms: list[int], *, batches: int = 1
) -> list[int]:
    """Write one record per timestamp to ``topic[partition]`` in ``batches`` flushed batches.

    Several batches matter: the embedded broker answers ListOffsets "latest" with the start of the last batch
    + 1, so a log end read that way is wrong as soon as there is more than one batch."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    size = max(1, -(-len(timestamps_ms) // batches))
    for start in range(0, len(timestamps_ms), size):
        for ts in timestamps_ms[start : start + size]:
            producer.produce(topic, value=b"x" * 20, key=b"k", partition=partition, timestamp=ts)
        producer.flush(30)
    return timestamps_ms


def commit(bootstrap: str, group: str, offsets: Mapping[tuple[str, int], int]) -> None:
    """Commit ``offsets`` for ``group`` without joining it (no subscribe): the group stays Empty."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "allow.auto.create.topics": False,
        }
    )
    try:
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        consumer.commit(offsets=tps, asynchronous=False)
    finally:
        consumer.close()


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), bytes(exc.read())


def http_json(url: str) -> tuple[int, Any]:
    status, body = http_get(url)
    return status, json.loads(body)


def metric_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``{(name, labels): value}`` from the Prometheus text format."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(
    samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: Any
) -> float | None:
    return samples.get((name, frozenset((k, str(v)) for k, v in labels.items())))
