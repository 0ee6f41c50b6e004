"""The delayed events still waiting in the delay tiers: what ``kep delays ls`` shows.

Each tier partition is read from the forwarder group's committed offset (read, never committed: the group is
not joined) to its end. What lies there is pending: not yet handed on, or handed on less than a commit
interval ago (the forwarder commits what was acknowledged every half second), so a record that just moved to
a smaller tier may be counted in both for that long. Only the ``limit`` soonest due records are kept; the
counts cover them all, so memory stays bounded whatever the number of pending events.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from dataclasses import dataclass, field

from confluent_kafka import Message

from kep.consumers.delays.decide import Reject, schedule
from kep.consumers.dlq.reader import BEGINNING, TopicReader
from kep.producers import headers as h
from kep.topology import KafkaSettings, Topology

__all__ = ["PendingDelay", "PendingDelays", "TierBacklog", "read_pending"]


@dataclass(frozen=True, slots=True)
class PendingDelay:
    """One record waiting in a delay tier. ``destination`` and ``due_ms`` are None when its headers are not
    what kep writes (``problem`` says why: the forwarder dead-letters it when it reaches it)."""

    tier: str
    partition: int
    offset: int
    key: bytes | None
    event_type: str | None
    event_id: str | None
    destination: str | None
    due_ms: int | None
    problem: str | None


@dataclass
class TierBacklog:
    """A tier topic's pending records: how many, and the soonest and latest due."""

    topic: str
    delay_seconds: float
    count: int = 0
    soonest_ms: int | None = None
    latest_ms: int | None = None


@dataclass
class PendingDelays:
    tiers: list[TierBacklog]
    soonest: list[PendingDelay]  # at most ``limit``, soonest due first (unreadable ones first: they go now)
    by_destination: Counter[str] = field(default_factory=Counter)
    unreadable: int = 0

    @property
    def count(self) -> int:
        return sum(tier.count for tier in self.tiers)


def read_pending(
    kafka: KafkaSettings, topology: Topology, *, now_ms: int, limit: int = 50, idle_timeout: float = 30.0
) -> PendingDelays:
    """The pending delayed records of ``topology``'s tiers (``ValueError`` when it has no ``delays:``)."""
    delays = topology.delays
    if delays is None:
        raise ValueError("the topology has no delays: section")
    destinations = {topic.name for topic in topology.topics}
    result = PendingDelays(tiers=[], soonest=[])
    kept: list[tuple[int, int, PendingDelay]] = []  # a max-heap of the soonest (negated due, order, record)
    order = itertools.count()
    with TopicReader(kafka, group_id=delays.group, idle_timeout=idle_timeout) as reader:
        for tier in delays.tier_list():
            backlog = TierBacklog(tier.topic, tier.delay_seconds)
            result.tiers.append(backlog)
            partitions = reader.partitions(tier.topic)
            committed = reader.committed(tier.topic, partitions)
            starts = {(tier.topic, p): BEGINNING if o is None else o for p, o in committed.items()}
            for msg in reader.read(starts):
                record = _pending(msg, tier.topic, destinations, now_ms, delays.max_delay)
                backlog.count += 1
                if record.due_ms is None:
                    result.unreadable += 1
                else:
                    result.by_destination[record.destination or ""] += 1
                    if backlog.soonest_ms is None or record.due_ms < backlog.soonest_ms:
                        backlog.soonest_ms = record.due_ms
                    if backlog.latest_ms is None or record.due_ms > backlog.latest_ms:
                        backlog.latest_ms = record.due_ms
                entry = (-(record.due_ms if record.due_ms is not None else -1), -next(order), record)
                if len(kept) < limit:
                    heapq.heappush(kept, entry)
                elif limit > 0 and entry > kept[0]:
                    heapq.heapreplace(kept, entry)
    result.soonest = [record for _, _, record in sorted(kept, reverse=True)]
    return result


def _pending(
    msg: Message, tier: str, destinations: set[str], now_ms: int, max_delay_s: float
) -> PendingDelay:
    headers = msg.headers()
    scheduled = schedule(headers, destinations, now_ms, max_delay_s)
    return PendingDelay(
        tier=tier,
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        key=msg.key(),
        event_type=h.header_str(headers, h.EVENT_TYPE),
        event_id=h.header_str(headers, h.IDEMPOTENCY_KEY),
        destination=None if isinstance(scheduled, Reject) else scheduled.destination,
        due_ms=None if isinstance(scheduled, Reject) else scheduled.due_ms,
        problem=scheduled.reason if isinstance(scheduled, Reject) else None,
    )
