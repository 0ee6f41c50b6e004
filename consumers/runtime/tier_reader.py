"""The retry tiers' own fetch path.

librdkafka hands a consumer's records out of one queue, in the order its fetch responses came in. A fetch
brings up to ``max.partition.fetch.bytes`` of every partition at once, so with a backlog on the main topics a
retry record stood behind seconds of main-topic records before the worker even saw it, and then ran seconds
after its due time. The retry tiers are therefore read by a second consumer of their own, on the poll thread:
its records are seen as soon as they are written, held until due (``held.py``) and then run.

Group membership stays with the worker's group consumer: it is assigned the tier partitions and commits their
offsets, but keeps them paused, so it never fetches them. This reader is not a group member. It is assigned
each tier partition the group gave us, at the group's committed offset, and forgets it when the group takes
it away. Its ``group.id`` is its own and it never commits, so it neither joins nor alters the group.
The poll thread owns it, like the group consumer.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from typing import Any

import structlog
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, Message, TopicPartition

log = structlog.get_logger(__name__)

#: Keys of the group consumer's configuration that belong to group membership, left out of the reader's.
_MEMBERSHIP_KEYS = (
    "group.id",
    "group.instance.id",
    "group.protocol",
    "group.remote.assignor",
    "partition.assignment.strategy",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "on_commit",
)


class TierReader:
    """Reads the retry tier partitions the group assigned to this worker (poll thread only)."""

    def __init__(
        self, group_config: dict[str, Any], tiers: Collection[str], *, auto_offset_reset: str
    ) -> None:
        conf = {k: v for k, v in group_config.items() if k not in _MEMBERSHIP_KEYS}
        conf["group.id"] = f"kep-tier-reader-{uuid.uuid4().hex}"  # never joined, never committed to
        conf["enable.auto.commit"] = False
        self.topics = frozenset(tiers)
        self._reset = OFFSET_BEGINNING if auto_offset_reset == "earliest" else OFFSET_END
        self._consumer = Consumer(conf)
        self._pending: list[TopicPartition] = []  # assigned by the group, not started here yet

    def adopt(self, partitions: Iterable[TopicPartition]) -> None:
        """The group assigned these (its assign callback): start reading them once the assignment took effect."""
        self._pending += [
            TopicPartition(tp.topic, tp.partition) for tp in partitions if tp.topic in self.topics
        ]

    def start_pending(self, group_consumer: Consumer, timeout: float = 10.0) -> None:
        """Pause the adopted partitions in the group consumer and read them here, from the group's committed
        offsets. Records the group consumer fetched before its pause are ignored by the worker."""
        if not self._pending:
            return
        group_consumer.pause(self._pending)
        try:
            committed = group_consumer.committed(self._pending, timeout=timeout)
        except KafkaException as exc:  # tried again at the next poll; nothing is read meanwhile
            log.warning("cannot read the retry tiers' committed offsets yet", error=str(exc))
            return
        self._pending = []
        start = [
            TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else self._reset)
            for tp in committed
        ]
        self._consumer.incremental_assign(start)
        log.debug("retry tiers read", partitions=[f"{tp.topic}[{tp.partition}]@{tp.offset}" for tp in start])

    def drop(self, partitions: Iterable[TopicPartition]) -> None:
        """The group took these away (revoke or loss): stop reading them, forget what was fetched."""
        dropped = {(tp.topic, tp.partition) for tp in partitions if tp.topic in self.topics}
        if not dropped:
            return
        self._pending = [tp for tp in self._pending if (tp.topic, tp.partition) not in dropped]
        assigned = [tp for tp in self._consumer.assignment() if (tp.topic, tp.partition) in dropped]
        if assigned:
            self._consumer.incremental_unassign(assigned)

    def consume(self, count: int) -> list[Message]:
        return self._consumer.consume(num_messages=count, timeout=0) if count > 0 else []

    def pause(self, partitions: list[TopicPartition]) -> None:
        self._consumer.pause(partitions)  # also before start_pending: librdkafka keeps it for the assignment

    def resume(self, partitions: list[TopicPartition]) -> None:
        self._consumer.resume(partitions)

    def get_watermark_offsets(self, partition: TopicPartition, *, cached: bool) -> tuple[int, int]:
        return self._consumer.get_watermark_offsets(partition, cached=cached)

    def close(self) -> None:
        self._consumer.close()
