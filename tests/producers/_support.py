"""Helpers for the producer tests: topologies over unique topics and Java's murmur2."""

from __future__ import annotations

from collections.abc import Sequence

from kep.topology import TopicSpec, Topology

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
