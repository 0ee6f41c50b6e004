"""``kep dlq replay``: hand dead letters back to the group that dead-lettered them, each exactly once.

Where they go comes from the topology, never from a record's headers (:mod:`consumers.dlq.route`): the first
retry topic of the dead-letter topic's group, for its source topic. Other groups reading the source topic never
see the copy. ``to`` (``--to TOPIC``) sends elsewhere instead, explicitly.

What is sent: the dead letter's key and value bytes unchanged, with its original headers (``kep-idempotency-key``
included, so a group that already processed the event skips it) and fresh provenance: the same origin, group and
idempotency key, ``kep-attempt`` 0 (the retry budget starts over), the first failure time and ``kep-due-time``
set to now (due at once; a deadline counts from the replay). A record whose provenance names another source
topic or group than the topology gives the dead-letter topic is not sent (a forged ``kep-original-topic`` sends
nothing anywhere); neither is a record without provenance. With ``to``, the original headers minus provenance
are sent, as the event was first published.

Bookkeeping, so that a rerun replays nothing twice and filters do not consume what they skip:

1. The replay group ``kep-dlq-replay.<dlq topic>`` holds a committed offset per partition. Everything below it
   is done. A run reads from there to the end of each partition (the *scan*).
2. Once a replayed copy is acknowledged, a *replay marker* naming the record's offset is appended to the same
   dead-letter partition (see :mod:`consumers.dlq.records`). The scan collects markers, so records above the
   committed offset that were replayed earlier (under other filters) are known and not sent again.
3. After each acknowledged batch the group commits, per partition, the offset of the first record that is
   neither replayed nor a marker. A record a filter skipped therefore holds the committed offset back: it is
   NOT consumed, and a later replay with other filters still takes it.
4. ``dry_run`` sends nothing, writes no marker and commits nothing.

A crash between a copy's acknowledgement and its marker replays that copy again on the next run; the
idempotency key makes the second copy a no-op for the consumer. Run one replay per dead-letter topic at a
time.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Protocol

import structlog
from confluent_kafka import Producer

from kep.consumers.dlq.errors import InvalidFilterError, TopicNotFoundError
from kep.consumers.dlq.filters import ReplayFilter
from kep.consumers.dlq.reader import BEGINNING, TopicReader
from kep.consumers.dlq.records import DeadLetterRecord, marker_from, marker_record, record_from
from kep.consumers.dlq.route import ReplayRoute, replay_route
from kep.consumers.retry.headers import Provenance, strip_provenance
from kep.producers import headers as h
from kep.producers.delivery import DeliveryReport
from kep.producers.errors import DeliveryError
from kep.schemas.errors import KepError
from kep.topology.model import Topology
from kep.topology.settings import KafkaSettings

log = structlog.get_logger(__name__)

REPLAY_GROUP_PREFIX = "kep-dlq-replay."
_MAX_REASONS = 10


class RawProducer(Protocol):
    """What replay needs from ``producers.EventProducer``."""

    def produce_raw(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Any = None,
        *,
        on_delivery: Callable[[DeliveryReport | None, DeliveryError | None], None] | None = None,
    ) -> Future[DeliveryReport] | None: ...

    def poll(self, timeout: float = 0.0) -> int: ...

    def flush(self, timeout: float = 30.0) -> int: ...


def replay_group(dlq_topic: str) -> str:
    """The consumer group that keeps replay progress for ``dlq_topic``."""
    return f"{REPLAY_GROUP_PREFIX}{dlq_topic}"


@dataclass(slots=True)
class ReplayResult:
    """What a replay did. ``skipped`` records did not match the filters and stay available; ``deferred``
    matched but were over ``limit``; ``already_replayed`` had a marker from an earlier run."""

    topic: str
    group: str
    dry_run: bool
    target: str = ""
    scanned: int = 0
    already_replayed: int = 0
    matched: int = 0
    replayed: int = 0
    skipped: int = 0
    deferred: int = 0
    failed: int = 0
    by_target: Counter[str] = field(default_factory=Counter)
    reasons: list[str] = field(default_factory=list)
    committed: dict[int, int] = field(default_factory=dict)

    @property
    def selected(self) -> int:
        """Records this run sends (or would send, in a dry run)."""
        return self.matched - self.deferred


@dataclass(frozen=True, slots=True)
class _Candidate:
    dead_lettered_ms: int
    partition: int
    offset: int


@dataclass(slots=True)
class _Scan:
    """The scan of one dead-letter topic from the group's committed offsets to the end."""

    starts: dict[int, int | None]
    ends: dict[int, int] = field(default_factory=dict)
    records: dict[int, list[int]] = field(default_factory=dict)  # offsets of dead letters (no markers)
    done: dict[int, set[int]] = field(default_factory=dict)  # offsets known to be replayed
    candidates: list[_Candidate] = field(default_factory=list)
    cursors: dict[int, int] = field(default_factory=dict)  # index of the first record not known to be done

    def watermark(self, partition: int) -> int | None:
        """First offset that is a dead letter not yet replayed (or the end): the offset safe to commit.

        ``done`` only grows, so the cursor only moves forward: all calls together cost one pass.
        """
        done = self.done.get(partition, set())
        offsets = self.records.get(partition, [])
        index = self.cursors.get(partition, 0)
        while index < len(offsets) and offsets[index] in done:
            index += 1
        self.cursors[partition] = index
        return offsets[index] if index < len(offsets) else self.ends.get(partition)


def replay(
    kafka: KafkaSettings,
    dlq_topic: str,
    *,
    topology: Topology,
    to: str | None = None,
    filters: ReplayFilter | None = None,
    limit: int | None = None,
    rate: float | None = None,
    dry_run: bool = False,
    producer: RawProducer | None = None,
    on_progress: Callable[[ReplayResult, int], None] | None = None,
    batch_size: int = 500,
    idle_timeout: float = 30.0,
    flush_timeout: float = 30.0,
) -> ReplayResult:
    """Hand the dead letters of ``dlq_topic`` that match ``filters`` back to their group (module docstring).

    ``topology`` says whose dead-letter topic it is (``NotADeadLetterTopicError`` for a main or retry topic);
    ``to`` sends to that topic instead of the group's first retry topic. ``limit`` caps how many are sent
    (oldest first), ``rate`` how many per second. ``producer`` defaults to an ``EventProducer`` on ``kafka``.
    ``on_progress(result, total)`` is called after each record sent.
    """
    route = replay_route(topology, dlq_topic, to)
    if limit is not None and limit < 0:
        raise InvalidFilterError(f"--limit {limit}: expected 0 or more")
    if rate is not None and rate <= 0:
        raise InvalidFilterError(f"--rate {rate}: expected more than 0 per second")
    filters = filters or ReplayFilter()
    result = ReplayResult(
        topic=dlq_topic, group=replay_group(dlq_topic), dry_run=dry_run, target=route.target
    )
    with TopicReader(kafka, group_id=result.group, idle_timeout=idle_timeout) as reader:
        scan = _scan(reader, dlq_topic, filters, result)
        chosen = sorted(scan.candidates, key=lambda c: (c.dead_lettered_ms, c.partition, c.offset))
        if limit is not None:
            result.deferred = max(0, len(chosen) - limit)
            chosen = chosen[:limit]
        if chosen:
            result.by_target[route.target] = len(chosen)
        if dry_run:
            return result
        if chosen:
            session = _Session(kafka, reader, route, scan, result, producer, flush_timeout)
            try:
                session.send_all(chosen, rate, batch_size, on_progress)
            finally:
                session.close()
        _commit(reader, dlq_topic, scan, result)
    return result


def _scan(reader: TopicReader, topic: str, filters: ReplayFilter, result: ReplayResult) -> _Scan:
    """Read from the committed offsets to the end: dead-letter offsets, markers, and what matches."""
    partitions = reader.partitions(topic)
    scan = _Scan(starts=reader.committed(topic, partitions))
    starts = {(topic, p): (BEGINNING if o is None else o) for p, o in scan.starts.items()}
    matched: list[_Candidate] = []
    for msg in reader.read(starts):
        marker = marker_from(msg)
        if marker is not None:
            scan.done.setdefault(marker.partition, set()).add(marker.target_offset)
            continue
        record = record_from(msg)
        scan.records.setdefault(record.partition, []).append(record.offset)
        if filters.matches(record):
            matched.append(_Candidate(record.dead_lettered_ms, record.partition, record.offset))
    scan.ends = {p: end for (t, p), end in reader.ends.items() if t == topic}
    scan.candidates = [c for c in matched if c.offset not in scan.done.get(c.partition, ())]
    result.scanned = sum(len(offsets) for offsets in scan.records.values())
    result.already_replayed = sum(
        1 for p, offsets in scan.records.items() for offset in offsets if offset in scan.done.get(p, ())
    )
    result.matched = len(scan.candidates)
    result.skipped = result.scanned - result.already_replayed - result.matched
    return scan


def _commit(reader: TopicReader, topic: str, scan: _Scan, result: ReplayResult) -> None:
    """Commit, per partition, the first offset not replayed, when it moved forward."""
    offsets = {}
    for partition, start in scan.starts.items():
        mark = scan.watermark(partition)
        if mark is not None and mark > (start or 0):
            offsets[partition] = mark
    reader.commit(topic, offsets)
    for partition, offset in offsets.items():
        scan.starts[partition] = offset
    result.committed.update(offsets)


class _Session:
    """Sends the chosen records in batches: copies, then markers, then a commit per acknowledged batch."""

    def __init__(
        self,
        kafka: KafkaSettings,
        reader: TopicReader,
        route: ReplayRoute,
        scan: _Scan,
        result: ReplayResult,
        producer: RawProducer | None,
        flush_timeout: float,
    ) -> None:
        self.reader, self.route, self.scan, self.result = reader, route, scan, result
        self.topic = route.dlq_topic
        self.flush_timeout = flush_timeout
        self._owned = producer is None
        self.producer = producer if producer is not None else _event_producer(kafka)
        # Markers form a set (a duplicate is harmless): no need for the idempotent producer's start-up.
        self.markers = Producer({**kafka.as_librdkafka_dict(), "acks": "all", "linger.ms": 0})
        self.acked: dict[tuple[int, int], DeliveryReport] = {}
        self.errors: dict[tuple[int, int], str] = {}
        self.pending: list[tuple[int, int]] = []
        self.known_topics: dict[str, bool] = {}

    def send_all(
        self,
        chosen: list[_Candidate],
        rate: float | None,
        batch_size: int,
        on_progress: Callable[[ReplayResult, int], None] | None,
    ) -> None:
        wanted: dict[int, set[int]] = {}
        for candidate in chosen:
            wanted.setdefault(candidate.partition, set()).add(candidate.offset)
        starts = {(self.topic, p): min(offsets) for p, offsets in wanted.items()}
        stops = {(self.topic, p): max(offsets) + 1 for p, offsets in wanted.items()}
        interval = 1.0 / rate if rate else 0.0
        next_at = time.monotonic()
        for msg in self.reader.read(starts, stops=stops):
            record = record_from(msg)
            if record.offset not in wanted.get(record.partition, ()):
                continue
            if interval:
                next_at = self._wait_until(next_at) + interval
            self._send(record)
            if len(self.pending) >= batch_size:
                self._settle()
            if on_progress is not None:
                on_progress(self.result, len(chosen))
        self._settle()
        if on_progress is not None:
            on_progress(self.result, len(chosen))

    def _wait_until(self, moment: float) -> float:
        while (ahead := moment - time.monotonic()) > 0:
            self.producer.poll(min(ahead, 0.2))
        return max(moment, time.monotonic() - 1.0)

    def _send(self, record: DeadLetterRecord) -> None:
        where = (record.partition, record.offset)
        route, provenance = self.route, record.provenance
        if provenance is None:
            reason = (
                record.provenance_error or "no provenance headers: its origin and idempotency key are unknown"
            )
            self._fail(where, reason)
            return
        if (provenance.original_topic, provenance.consumer_group) != (route.source, route.group):
            self._fail(
                where,
                f"its provenance names topic {provenance.original_topic!r} and group "
                f"{provenance.consumer_group!r}, but {route.dlq_topic} holds the dead letters of group "
                f"{route.group!r} on {route.source!r} (topology): not sent",
            )
            return
        target = route.target
        if not self._exists(target):
            self._fail(where, f"topic {target!r} does not exist (kep topology apply creates retry topics)")
            return
        self.pending.append(where)
        base = strip_provenance(record.headers) if route.explicit else _handed_back(provenance, record)
        replayed_at = (h.REPLAYED_AT, h.encode_int(time.time_ns() // 1_000_000))  # read by event status
        headers = [*(x for x in base if x[0] != h.REPLAYED_AT), replayed_at]
        callback = partial(self._delivered, where)
        try:
            self.producer.produce_raw(target, record.key, record.value, headers, on_delivery=callback)
        except KepError as exc:  # a record that cannot even be queued fails alone, not the whole run
            self.pending.remove(where)
            self._fail(where, f"{type(exc).__name__}: {exc}")

    def _delivered(
        self, where: tuple[int, int], report: DeliveryReport | None, error: DeliveryError | None
    ) -> None:
        if report is not None:
            self.acked[where] = report
        else:
            self.errors[where] = str(error)

    def _settle(self) -> None:
        """Wait for the batch's acknowledgements, write markers for them, then commit."""
        if not self.pending:
            return
        self.producer.flush(self.flush_timeout)
        now = time.time_ns() // 1_000_000
        replayed = []
        for where in self.pending:
            report = self.acked.pop(where, None)
            if report is None:
                reason = self.errors.pop(where, f"not acknowledged within {self.flush_timeout:.0f}s")
                self._fail(where, reason)
                continue
            replayed.append(where)
            key, value, headers = marker_record(where[0], where[1], _where(report), now)
            self.markers.produce(self.topic, value, key, partition=where[0], headers=headers)
        self.pending.clear()
        unmarked = self.markers.flush(self.flush_timeout)
        if unmarked:
            log.warning("replay markers not acknowledged; those may be replayed again", count=unmarked)
        for partition, offset in replayed:
            if not unmarked:
                self.scan.done.setdefault(partition, set()).add(offset)
        self.result.replayed += len(replayed)
        _commit(self.reader, self.topic, self.scan, self.result)

    def _fail(self, where: tuple[int, int], reason: str) -> None:
        self.result.failed += 1
        if len(self.result.reasons) < _MAX_REASONS:
            self.result.reasons.append(f"{self.topic}[{where[0]}]@{where[1]}: {reason}")
        log.warning("replay failed", topic=self.topic, partition=where[0], offset=where[1], reason=reason)

    def _exists(self, topic: str) -> bool:
        if topic not in self.known_topics:
            try:
                self.reader.partitions(topic)
                self.known_topics[topic] = True
            except TopicNotFoundError:
                self.known_topics[topic] = False
        return self.known_topics[topic]

    def close(self) -> None:
        self.markers.flush(self.flush_timeout)
        self.markers.close()
        if self._owned:
            close = getattr(self.producer, "close", None)
            if callable(close):
                close()


def _handed_back(provenance: Provenance, record: DeadLetterRecord) -> list[tuple[str, bytes | None]]:
    """The headers of a copy handed back to its group's retry topic: the original headers and fresh provenance
    (attempts start over, due now, the deadline counts from now)."""
    now = time.time_ns() // 1_000_000
    fresh = replace(provenance, attempt=0, first_failure_ms=now, last_failure_ms=now, due_ms=now)
    return fresh.to_headers(record.headers)


def _event_producer(kafka: KafkaSettings) -> RawProducer:
    from kep.producers.producer import EventProducer
    from kep.topology.model import Topology

    return EventProducer(kafka, Topology())


def _where(report: DeliveryReport) -> str:
    return f"{report.topic}/{report.partition}@{report.offset}"
