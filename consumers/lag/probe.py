"""``LagProbe``: the true log end and the age of the oldest unprocessed record, right on every broker.

ListOffsets "latest" cannot be trusted on every Kafka-protocol broker (the embedded one answers the start of
the last batch), so the probe reads the log instead. A throw-away consumer (its own group id, never
subscribed, never committing, ``enable.partition.eof=true``, ``fetch.wait.max.ms=10``) is assigned at the
positions asked for:

* the first record it receives on a partition is the oldest unprocessed one: its timestamp (on a retry topic
  its ``kep-due-time``, see ``consumers.lag.due``) gives the lag in seconds, and the high watermark of the
  Fetch response that carried it (``get_watermark_offsets(cached=True)``) the log end;
* an end-of-partition event means the position is the log end: caught up (or an empty partition).

The consumer is kept across calls: partitions are added with ``incremental_assign``, paused as soon as
they answered (so nothing more is fetched for them) and removed with ``incremental_unassign`` at the end of
the call. A position below 0 means "no committed offset": the probe starts at the log start (ListOffsets
earliest, which every broker answers right). It reads with ``isolation.level=read_uncommitted`` so its
log end is the high watermark, as ``kafka-consumer-groups`` reports it; transaction markers are never
delivered, so a position on a marker answers the next data record (or caught up).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType

import structlog
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from kep.consumers.lag import _admin
from kep.consumers.lag.due import lag_start_ms
from kep.consumers.lag.errors import LagError, LagReadError
from kep.topology.settings import KafkaSettings

log = structlog.get_logger(__name__)

TopicPartitionKey = tuple[str, int]
NO_OFFSET = -1001
"""Position meaning "the group has no committed offset here" (librdkafka's ``OFFSET_INVALID``)."""
PROBE_GROUP_PREFIX = "kep-lag-probe-"
"""Group id prefix of the throw-away consumers; the exporter never reports these groups."""


@dataclass(frozen=True, slots=True)
class PartitionProbe:
    """The answer for one partition.

    ``log_end``: the high watermark (offset of the next record to be written).
    ``next_timestamp_ms``: when the first record at or after the position starts to count as late (ms since the
    epoch): its timestamp, or its due time on a retry topic (``consumers.lag.due.lag_start_ms``); ``None``
    when the position is at the log end (caught up, or an empty partition), or for a record without a timestamp.
    ``position``: where the probe read from: the position asked for, or the log start when it was below 0.
    """

    log_end: int
    next_timestamp_ms: int | None
    position: int | None = None


@dataclass(slots=True)
class _Reading:
    """The state of one partition during a probe call."""

    position: int
    first_offset: int | None = None
    timestamp_ms: int | None = None
    eof_offset: int | None = None
    answered: bool = False
    failed: str | None = None


class LagProbe:
    """Answers log ends and lag timestamps for given positions with one reused throw-away consumer.

    >>> with LagProbe(KafkaSettings(bootstrap_servers="127.0.0.1:9092")) as probe:
    ...     probe.probe({("orders", 0): 42})
    {('orders', 0): PartitionProbe(log_end=50, next_timestamp_ms=1718000000000, position=42)}

    Thread-safe (calls are serialised). Each call is bounded by ``timeout_s``; partitions that did not answer
    in time (unknown partition, unreachable leader, a position past the log end) are absent from the result.
    """

    def __init__(
        self, kafka: KafkaSettings, *, timeout_s: float = 5.0, admin: AdminClient | None = None
    ) -> None:
        if timeout_s <= 0:
            raise LagError(f"probe timeout must be > 0 seconds, got {timeout_s}")
        self.timeout_s = timeout_s
        base = kafka.as_librdkafka_dict()
        self.group_id = f"{PROBE_GROUP_PREFIX}{uuid.uuid4().hex[:12]}"
        self._consumer = Consumer(
            {
                **base,
                "client.id": f"{kafka.client_id}-lag-probe",
                "group.id": self.group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 10,
                "auto.offset.reset": "error",
                "allow.auto.create.topics": False,
                "isolation.level": "read_uncommitted",
                "max.partition.fetch.bytes": 65536,
                "queued.max.messages.kbytes": 4096,
            }
        )
        self._admin = admin if admin is not None else AdminClient(base)
        self._lock = threading.Lock()
        self._closed = False

    # -- committed offsets ------------------------------------------------------------------------------
    def committed_offsets(
        self, group: str, partitions: Iterable[TopicPartitionKey] | None = None
    ) -> dict[TopicPartitionKey, int]:
        """The committed offsets of ``group`` (all its partitions, or only ``partitions``).

        Partitions without a committed offset are absent. Raises ``LagReadError`` naming the group.
        """
        answer = _admin.committed_offsets(self._admin, [group], self.timeout_s, partitions)[group]
        if isinstance(answer, LagReadError):
            raise answer
        return answer

    # -- probing ----------------------------------------------------------------------------------------
    def probe(self, positions: Mapping[TopicPartitionKey, int]) -> dict[TopicPartitionKey, PartitionProbe]:
        """Log end and next-record timestamp for each ``(topic, partition): position``.

        A position below 0 (``NO_OFFSET``) reads from the log start. Partitions that do not answer within
        ``timeout_s`` are absent from the result.
        """
        if not positions:
            return {}
        with self._lock:
            if self._closed:
                raise LagError("the lag probe is closed")
            deadline = time.monotonic() + self.timeout_s
            readings = self._resolve(positions)
            if not readings:
                return {}
            tps = [TopicPartition(t, p, r.position) for (t, p), r in readings.items()]
            self._consumer.incremental_assign(tps)
            try:
                self._read(readings, deadline)
                return self._answers(readings)
            finally:
                bare = [TopicPartition(tp.topic, tp.partition) for tp in tps]
                self._consumer.resume(bare)  # a pause outlives unassign: clear it for the next call
                self._consumer.incremental_unassign(bare)

    def _resolve(self, positions: Mapping[TopicPartitionKey, int]) -> dict[TopicPartitionKey, _Reading]:
        """Positions below 0 become the log start; partitions whose start cannot be read are dropped."""
        missing = [key for key, offset in positions.items() if offset < 0]
        starts = _admin.log_starts(self._admin, missing, self.timeout_s) if missing else {}
        readings: dict[TopicPartitionKey, _Reading] = {}
        for key, offset in positions.items():
            position = offset if offset >= 0 else starts.get(key)
            if position is None:
                log.warning("lag probe: cannot read the log start", topic=key[0], partition=key[1])
                continue
            readings[key] = _Reading(position)
        return readings

    def _read(self, readings: dict[TopicPartitionKey, _Reading], deadline: float) -> None:
        pending = set(readings)
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning(
                    "lag probe timed out",
                    partitions=sorted(f"{t}[{p}]" for t, p in pending)[:20],
                    unanswered=len(pending),
                    timeout_s=self.timeout_s,
                )
                return
            answered: list[TopicPartition] = []
            for msg in self._consumer.consume(num_messages=max(1, len(pending)), timeout=min(left, 0.1)):
                key = self._record(msg, readings)
                if key is not None and key in pending:
                    pending.discard(key)
                    answered.append(TopicPartition(*key))
            if answered:
                self._consumer.pause(answered)

    @staticmethod
    def _record(msg: Message, readings: dict[TopicPartitionKey, _Reading]) -> TopicPartitionKey | None:
        """Note what ``msg`` says about its partition; returns the key when that partition is now answered."""
        topic, partition = msg.topic(), msg.partition()
        if topic is None or partition is None:
            log.warning("lag probe: client error", error=str(msg.error()))
            return None
        key = (topic, partition)
        reading = readings.get(key)
        if reading is None or reading.answered or reading.failed is not None:
            return None
        error = msg.error()
        offset = msg.offset()
        if error is None:
            kind, timestamp = msg.timestamp()
            reading.first_offset = offset
            written = None if kind == TIMESTAMP_NOT_AVAILABLE else timestamp
            reading.timestamp_ms = lag_start_ms(topic, written, msg.headers())  # due time on retry topics
            reading.answered = True
        elif error.code() == KafkaError._PARTITION_EOF:
            reading.eof_offset = offset
            reading.answered = True
        else:
            reading.failed = error.str()
            log.warning("lag probe: partition error", topic=topic, partition=partition, error=error.str())
        return key

    def _answers(
        self, readings: dict[TopicPartitionKey, _Reading]
    ) -> dict[TopicPartitionKey, PartitionProbe]:
        out: dict[TopicPartitionKey, PartitionProbe] = {}
        for (topic, partition), reading in readings.items():
            if not reading.answered:
                continue
            _low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
            if reading.first_offset is not None:
                log_end = max(high, reading.first_offset + 1)
                out[(topic, partition)] = PartitionProbe(log_end, reading.timestamp_ms, reading.position)
            else:
                eof = reading.eof_offset if reading.eof_offset is not None else reading.position
                out[(topic, partition)] = PartitionProbe(max(high, eof), None, reading.position)
        return out

    # -- lifecycle --------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the throw-away consumer (it never joined a group, so this is quick). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._consumer.close()

    def __enter__(self) -> LagProbe:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
