"""Helpers for the producer tests: topologies over unique topics, reading topics back, Java's murmur2."""

from __future__ import annotations

import time
from collections.abc import Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from topology import TopicSpec, Topology

ORDER = "kep.orders.OrderPlaced"
PAYMENT = "kep.orders.PaymentCaptured"


def topology_of(*specs: tuple[str, int, Sequence[str]], key_field: str | None = None) -> Topology:
    """A topology declaring ``(name, partitions, value_schema)`` topics."""
    return Topology(
        topics=tuple(
            TopicSpec(name=name, partitions=partitions, value_schema=tuple(schemas), key_field=key_field)
            for name, partitions, schemas in specs
        )
    )


def read_topic(bootstrap: str, topic: str, *, expected: int, timeout: float = 20.0) -> list[Message]:
    """Every record of ``topic``: waits for ``expected`` records, then for the end of every partition.

    Fails when more than ``expected`` arrive, or when the end is not reached in ``timeout`` seconds.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "kep-test-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "allow.auto.create.topics": False,
            "fetch.wait.max.ms": 50,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: list[Message] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout
        while not (len(records) >= expected and len(at_end) == len(partitions)):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{topic}: {len(records)} records, {len(at_end)}/{len(partitions)} partitions at "
                    f"their end after {timeout}s; expected {expected}"
                )
            msg = consumer.poll(0.1)
            if msg is None:
                continue
            error = msg.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                at_end.add(msg.partition() or 0)
            elif error is not None:
                raise AssertionError(f"{topic}: consumer error {error}")
            else:
                records.append(msg)
                at_end.discard(msg.partition() or 0)
        assert len(records) == expected, f"{topic}: {len(records)} records, expected exactly {expected}"
        return records
    finally:
        consumer.close()


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2`` (the Java client's key hash), as a signed 32-bit int."""
    m, r, mask = 0x5BD1E995, 24, 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    tail = length - length % 4
    rest = length % 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def java_partition(key: bytes, partitions: int) -> int:
    """The partition Java's default partitioner picks for a keyed record: ``toPositive(murmur2(key)) % n``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
