"""``LagProbe``: the log end, the records a group has yet to process and the age of the oldest one.

**Log ends.** The probe takes them from ListOffsets "latest" at the group's isolation level (``read_committed``
by default: the last stable offset; ``read_uncommitted``: the high watermark), one request per partition
leader, and the log starts from ListOffsets "earliest". ListOffsets "latest" is wrong on some
Kafka-protocol brokers (the embedded one answers the start of the last batch + 1), so the probe checks it
against the high watermark of a Fetch response once per partition (a one-record read at the end of the
log, or the read it makes anyway for the age) and, when the two disagree (confirmed by a second ListOffsets
sent after the fetch), reads every log end from the log instead for the rest of its life: detected, never
configured.

**Reads.** A throw-away consumer (its own group id, never subscribed, never committing,
``enable.partition.eof=true``, ``fetch.wait.max.ms=10``, the group's isolation level, 64 KiB per partition
per fetch) is assigned only where the log end is past the position, from the position on:

* the first record it receives is the oldest unprocessed one: its timestamp (on a retry topic its
  ``kep-due-time``, see ``consumers.lag.due``) gives the lag in seconds;
* it keeps counting records until the end of the partition (or ``max_records``): when it gets there, the
  lag in messages is that count, so transaction markers, aborted records (under ``read_committed``) and
  offsets removed by compaction are not counted; beyond ``max_records`` it is ``log end - first record``;
* an end of partition with no record before it means only markers or aborted records remain: lag 0.

The answer for a position is kept while the position does not move: a group that does not commit costs
no fetch until its position moves (or, when only markers followed it, until the log grows).

A position below 0 means "no committed offset": the probe starts at the log start. A committed offset
below the log start (retention deleted records the group never processed) is read from the log start and
flagged ``below_log_start``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import structlog
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from kep.consumers.lag import _admin
from kep.consumers.lag.due import lag_start_ms
from kep.consumers.lag.errors import LagError, LagReadError
from kep.topology.settings import KafkaSettings

log = structlog.get_logger(__name__)

TopicPartitionKey = tuple[str, int]
IsolationLevel = Literal["read_committed", "read_uncommitted"]
ISOLATION_LEVELS: tuple[IsolationLevel, ...] = ("read_committed", "read_uncommitted")
NO_OFFSET = -1001
"""Position meaning "the group has no committed offset here" (librdkafka's ``OFFSET_INVALID``)."""
PROBE_GROUP_PREFIX = "kep-lag-probe-"
"""Group id prefix of the throw-away consumers; the exporter never reports these groups."""
MAX_RECORDS = 500
"""Records counted per partition and read; past it the lag in messages is ``log end - first record``."""
GROUP_MEMBERSHIP_KEYS = frozenset(
    {
        "group.protocol",
        "group.remote.assignor",
        "group.instance.id",
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "partition.assignment.strategy",
        "group.protocol.type",
        "isolation.level",
    }
)
"""Keys the probe's consumer never takes from the connection settings: it never joins a group (and
librdkafka refuses classic-only keys beside ``group.protocol=consumer``); its isolation level is its own."""


@dataclass(frozen=True, slots=True)
class PartitionProbe:
    """The answer for one partition.

    ``log_end``: the log end at the isolation level (the last stable offset under ``read_committed``).
    ``next_timestamp_ms``: when the first record the group has yet to process starts to count as late (ms
    since the epoch): its timestamp, or its due time on a retry topic (``consumers.lag.due.lag_start_ms``);
    ``None`` when there is none (caught up, an empty partition, only markers or aborted records left), or
    for a record without a timestamp.
    ``position``: where the probe read from: the position asked for, or the log start when it was below 0
    or below the log start.
    ``lag_messages``: the records the group has yet to process from ``position`` (see the module docstring).
    ``log_start``: the first offset in the log, when it could be read.
    ``below_log_start``: the position asked for is below the log start: records were deleted before the
    group processed them; the lag is measured from the log start.
    """

    log_end: int
    next_timestamp_ms: int | None
    position: int | None = None
    lag_messages: int | None = None
    log_start: int | None = None
    below_log_start: bool = False


@dataclass(slots=True)
class _Reading:
    """A read of one partition from ``start``; filled by the consume loop."""

    start: int
    limit: int
    first_offset: int | None = None
    timestamp_ms: int | None = None
    count: int = 0
    eof_offset: int | None = None
    done: bool = False
    failed: str | None = None


@dataclass(frozen=True, slots=True)
class _Scan:
    """What a read from a position found: the first record (offset, timestamp), the records counted and
    where the partition ended (``None``: the count stopped at ``MAX_RECORDS``)."""

    first_offset: int | None
    timestamp_ms: int | None
    count: int
    eof_offset: int | None


@dataclass(frozen=True, slots=True)
class _Target:
    position: int
    log_start: int | None
    below_log_start: bool


@dataclass(slots=True)
class _Offsets:
    """The ListOffsets answers shared by the rounds of one call."""

    starts: dict[TopicPartitionKey, int]
    ends: dict[TopicPartitionKey, int] | None  # None: the log ends are read from the log
    scans: dict[tuple[TopicPartitionKey, int], _Scan] = field(default_factory=dict)


class LagProbe:
    """Answers log ends, lag in messages and lag timestamps for given positions.

    >>> with LagProbe(KafkaSettings(bootstrap_servers="127.0.0.1:9092")) as probe:
    ...     probe.probe({("orders", 0): 42})
    {('orders', 0): PartitionProbe(log_end=50, next_timestamp_ms=1718000000000, position=42, ...)}

    ``isolation_level`` is the group's (``None``: the connection settings' ``isolation.level``, else
    ``read_committed``, librdkafka's default). Thread-safe (calls are serialised). Each call is bounded by
    about ``timeout_s``; partitions that did not answer in time (unknown partition, unreachable leader, a
    position past the log end) are absent from the result.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        timeout_s: float = 5.0,
        admin: AdminClient | None = None,
        isolation_level: IsolationLevel | None = None,
        max_records: int = MAX_RECORDS,
    ) -> None:
        if timeout_s <= 0:
            raise LagError(f"probe timeout must be > 0 seconds, got {timeout_s}")
        base = kafka.as_librdkafka_dict()
        level = isolation_level or base.get("isolation.level") or "read_committed"
        if level not in ISOLATION_LEVELS:
            raise LagError(f"isolation level must be one of {', '.join(ISOLATION_LEVELS)}, got {level!r}")
        self.timeout_s = timeout_s
        self.isolation_level: IsolationLevel = level
        self.max_records = max(1, max_records)
        self.group_id = f"{PROBE_GROUP_PREFIX}{uuid.uuid4().hex[:12]}"
        self._consumer = Consumer(
            {
                **{k: v for k, v in base.items() if k not in GROUP_MEMBERSHIP_KEYS},
                "client.id": f"{kafka.client_id}-lag-probe",
                "group.id": self.group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 10,
                "auto.offset.reset": "error",
                "allow.auto.create.topics": False,
                "isolation.level": level,
                # size-bounded reads: 64 KiB per partition, 256 KiB per fetch, 1 MiB prefetched
                "max.partition.fetch.bytes": 65536,
                "message.max.bytes": 262144,
                "fetch.max.bytes": 262144,
                "queued.max.messages.kbytes": 1024,
            }
        )
        self._admin = admin if admin is not None else AdminClient(base)
        self._lock = threading.Lock()
        self._closed = False
        self._fetch_log_ends = False  # set once ListOffsets "latest" was seen wrong on this cluster
        self._checked: set[TopicPartitionKey] = set()  # partitions whose ListOffsets end matched a fetch
        self._scans: dict[tuple[TopicPartitionKey, int], _Scan] = {}

    @property
    def log_ends_from_fetch(self) -> bool:
        """True once this cluster's ListOffsets "latest" was seen wrong: log ends are then read from the log."""
        return self._fetch_log_ends

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
        """The answer for each ``(topic, partition): position``; a position below 0 (``NO_OFFSET``) reads
        from the log start. Partitions that do not answer within ``timeout_s`` are absent."""
        return self.probe_all([positions])[0]

    def probe_all(
        self, rounds: Sequence[Mapping[TopicPartitionKey, int]]
    ) -> list[dict[TopicPartitionKey, PartitionProbe]]:
        """``probe`` for several position maps (at most one position per partition in each), sharing one
        ListOffsets request per leader and kind between them."""
        if not any(rounds):
            return [{} for _ in rounds]
        with self._lock:
            if self._closed:
                raise LagError("the lag probe is closed")
            started = time.monotonic()
            keys = self._existing({key for positions in rounds for key in positions})
            starts, ends = _admin.log_starts_and_ends(
                self._admin, keys, None if self._fetch_log_ends else self._read_committed, self.timeout_s
            )
            offsets = _Offsets(starts, ends)
            # the reads get what is left of the timeout, and at least half of it after slow admin requests
            deadline = max(started + self.timeout_s, time.monotonic() + self.timeout_s / 2)
            answers = [
                self._round({k: o for k, o in positions.items() if k in keys}, offsets, deadline)
                for positions in rounds
            ]
            self._scans = offsets.scans  # keep what the positions asked now found; forget the rest
            return answers

    def _existing(self, keys: set[TopicPartitionKey]) -> set[TopicPartitionKey]:
        """The partitions that exist (one metadata request naming their topics): ListOffsets for an unknown
        topic or partition would wait out the whole request timeout."""
        counts = _admin.partition_counts(self._admin, {t for t, _ in keys}, self.timeout_s)
        return {(t, p) for t, p in keys if p < counts.get(t, 0)}

    @property
    def _read_committed(self) -> bool:
        return self.isolation_level == "read_committed"

    def _round(
        self, positions: Mapping[TopicPartitionKey, int], offsets: _Offsets, deadline: float
    ) -> dict[TopicPartitionKey, PartitionProbe]:
        targets = self._targets(positions, offsets.starts)
        if offsets.ends is not None:
            answers = self._with_list_offsets(targets, offsets, deadline)
            if not self._fetch_log_ends:
                return answers
            offsets.ends = None  # ListOffsets was just found wrong: this round again, from the log
        return self._with_fetch(targets, offsets, deadline)

    @staticmethod
    def _targets(
        positions: Mapping[TopicPartitionKey, int], starts: Mapping[TopicPartitionKey, int]
    ) -> dict[TopicPartitionKey, _Target]:
        """Where to read each partition: the position, or the log start (no commit, or a commit below it)."""
        targets: dict[TopicPartitionKey, _Target] = {}
        for key, offset in positions.items():
            start = starts.get(key)
            if offset < 0:
                if start is None:
                    log.warning("lag probe: cannot read the log start", topic=key[0], partition=key[1])
                    continue
                targets[key] = _Target(start, start, False)
            elif start is not None and offset < start:
                targets[key] = _Target(start, start, True)
            else:
                targets[key] = _Target(offset, start, False)
        return targets

    # -- log ends from ListOffsets ----------------------------------------------------------------------
    def _with_list_offsets(
        self, targets: Mapping[TopicPartitionKey, _Target], offsets: _Offsets, deadline: float
    ) -> dict[TopicPartitionKey, PartitionProbe]:
        ends = offsets.ends or {}
        known = {key: t for key, t in targets.items() if key in ends}
        reads: dict[TopicPartitionKey, _Reading] = {}
        cached: dict[TopicPartitionKey, _Scan] = {}
        for key, target in known.items():
            end = ends[key]
            if end > target.position:
                scan = self._scans.get((key, target.position))
                if scan is not None and (scan.first_offset is not None or end <= (scan.eof_offset or 0)):
                    cached[key] = scan
                else:
                    reads[key] = _Reading(target.position, self.max_records)
            start = target.log_start if target.log_start is not None else 0
            if key not in reads and end > start and (key not in self._checked or end < target.position):
                # The last record: its fetch carries the high watermark. A position past the log end is
                # what a wrong ListOffsets looks like (or a recreated topic): checked every time.
                reads[key] = _Reading(end - 1, 1)
        highs = self._read(reads, deadline)
        self._check(reads, highs, known, ends)
        if self._fetch_log_ends:
            return {}
        out: dict[TopicPartitionKey, PartitionProbe] = {}
        for key, target in known.items():
            end = ends[key]
            if end < target.position:
                continue  # a commit past the log end (a recreated topic): unknown, reported as such
            if end == target.position:
                out[key] = _answer(target, end, _Scan(None, None, 0, end))  # caught up: nothing read
                continue
            scan = cached.get(key)
            reading = reads.get(key)
            if scan is None and reading is not None and reading.done and reading.failed is None:
                scan = _Scan(reading.first_offset, reading.timestamp_ms, reading.count, reading.eof_offset)
            if scan is None:
                continue  # the read did not finish in time or failed: unknown, reported as such
            offsets.scans[(key, target.position)] = scan
            out[key] = _answer(target, end, scan)
        return out

    def _check(
        self,
        reads: Mapping[TopicPartitionKey, _Reading],
        highs: Mapping[TopicPartitionKey, int],
        targets: Mapping[TopicPartitionKey, _Target],
        ends: Mapping[TopicPartitionKey, int],
    ) -> None:
        """Compare each fetched high watermark with ListOffsets; a second ListOffsets (read_uncommitted,
        sent after the fetch) confirms a difference, which records written meanwhile or an open
        transaction would also explain."""
        suspects: dict[TopicPartitionKey, int] = {}
        for key, high in highs.items():
            if reads[key].failed is not None:
                continue
            if high > ends[key]:
                suspects[key] = high
            else:
                self._conclusive(key, high, targets)
        if not suspects:
            return
        again = _admin.log_ends(self._admin, suspects, False, self.timeout_s)
        for key, high in suspects.items():
            latest = again.get(key)
            if latest is None:
                continue
            if latest >= high:
                self._conclusive(key, high, targets)
                continue
            log.warning(
                "ListOffsets answers a log end behind the fetched high watermark; reading log ends from "
                "the log on this cluster",
                topic=key[0],
                partition=key[1],
                list_offsets=latest,
                high_watermark=high,
            )
            self._fetch_log_ends = True
            self._scans.clear()
            return

    def _conclusive(
        self, key: TopicPartitionKey, high: int, targets: Mapping[TopicPartitionKey, _Target]
    ) -> None:
        """A log end that matched the watermark is trusted from then on when the log held at least two
        records (a wrong "start of the last batch + 1" cannot show in a one-record log)."""
        start = targets[key].log_start if key in targets else None
        if high - (start or 0) >= 2:
            self._checked.add(key)

    # -- log ends from the log --------------------------------------------------------------------------
    def _with_fetch(
        self, targets: Mapping[TopicPartitionKey, _Target], offsets: _Offsets, deadline: float
    ) -> dict[TopicPartitionKey, PartitionProbe]:
        """Every partition read from its position: the log end is the fetched high watermark."""
        reads = {key: _Reading(t.position, self.max_records) for key, t in targets.items()}
        highs = self._read(reads, deadline)
        out: dict[TopicPartitionKey, PartitionProbe] = {}
        for key, reading in reads.items():
            if not reading.done or reading.failed is not None:
                continue
            target = targets[key]
            seen = reading.eof_offset if reading.eof_offset is not None else target.position
            if reading.first_offset is not None and reading.eof_offset is None:
                seen = reading.first_offset + reading.count
            end = max(highs.get(key, -1), seen)
            scan = _Scan(reading.first_offset, reading.timestamp_ms, reading.count, reading.eof_offset)
            out[key] = _answer(target, end, scan)
        return out

    # -- the consumer -----------------------------------------------------------------------------------
    def _read(
        self, reads: Mapping[TopicPartitionKey, _Reading], deadline: float
    ) -> dict[TopicPartitionKey, int]:
        """Run ``reads`` until each is done (or the deadline); returns each read partition's fetched high
        watermark (absent where none was seen)."""
        if not reads:
            return {}
        tps = [TopicPartition(t, p, r.start) for (t, p), r in reads.items()]
        self._consumer.incremental_assign(tps)
        try:
            self._consume(dict(reads), deadline)
            highs: dict[TopicPartitionKey, int] = {}
            for tp in tps:
                _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if high is not None and high >= 0:
                    highs[(tp.topic, tp.partition)] = int(high)
            return highs
        finally:
            bare = [TopicPartition(tp.topic, tp.partition) for tp in tps]
            self._consumer.resume(bare)  # a pause outlives unassign: clear it for the next call
            self._consumer.incremental_unassign(bare)

    def _consume(self, pending: dict[TopicPartitionKey, _Reading], deadline: float) -> None:
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
            finished: list[TopicPartition] = []
            for msg in self._consumer.consume(num_messages=500, timeout=min(left, 0.1)):
                key = _record(msg, pending)
                if key is not None:
                    del pending[key]
                    finished.append(TopicPartition(*key))
            if finished:
                self._consumer.pause(finished)

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


def _record(msg: Message, pending: dict[TopicPartitionKey, _Reading]) -> TopicPartitionKey | None:
    """Note what ``msg`` says about its partition; returns the key when that read is now finished."""
    topic, partition = msg.topic(), msg.partition()
    if topic is None or partition is None:
        log.warning("lag probe: client error", error=str(msg.error()))
        return None
    key = (topic, partition)
    reading = pending.get(key)
    if reading is None:
        return None  # prefetched after its read finished
    error = msg.error()
    offset: Any = msg.offset()
    if error is None:
        if offset < reading.start:
            return None
        if reading.first_offset is None:
            kind, timestamp = msg.timestamp()
            reading.first_offset = offset
            written = None if kind == TIMESTAMP_NOT_AVAILABLE else timestamp
            reading.timestamp_ms = lag_start_ms(topic, written, msg.headers())  # due time on retry topics
        reading.count += 1
        reading.done = reading.count >= reading.limit
    elif error.code() == KafkaError._PARTITION_EOF:
        reading.eof_offset = offset
        reading.done = True
    else:
        reading.failed = error.str()
        reading.done = True
        log.warning("lag probe: partition error", topic=topic, partition=partition, error=error.str())
    return key if reading.done else None


def _answer(target: _Target, end: int, scan: _Scan) -> PartitionProbe:
    """The answer for a target from the log end and what a read from its position found."""
    end = max(end, scan.eof_offset or 0)
    if scan.first_offset is None:
        lag = max(0, end - (scan.eof_offset if scan.eof_offset is not None else target.position))
    elif scan.eof_offset is not None:
        lag = scan.count + max(0, end - scan.eof_offset)
    else:
        lag = max(0, end - scan.first_offset)
    return PartitionProbe(
        log_end=end,
        next_timestamp_ms=scan.timestamp_ms if scan.first_offset is not None else None,
        position=target.position,
        lag_messages=lag,
        log_start=target.log_start,
        below_log_start=target.below_log_start,
    )
