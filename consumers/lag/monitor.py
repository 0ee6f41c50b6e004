"""``LagMonitor``: one poll of every (filtered) consumer group into a ``LagSnapshot``, with window statuses.

The one code path behind both the exporter and ``kep lag``. A poll:

1. lists the consumer groups and keeps those whose id matches ``group_filter`` in full (``re.fullmatch``);
2. describes them (state, members, member assignments) and reads their committed offsets;
3. takes every partition of every topic the group has a committed offset on or is assigned (a partition with
   no commit resumes from the log start, as with ``auto.offset.reset=earliest``), with a metadata request
   naming those topics;
4. asks ``LagProbe`` for the log end, the records left and the next record's timestamp at each position:
   one round per distinct position of a partition (two groups at the same offset share an answer), the
   rounds sharing one ListOffsets request per leader;
5. feeds a ``StatusTracker`` and returns the snapshot with partition and group statuses.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType

import structlog
from confluent_kafka.admin import AdminClient

from kep.consumers.lag import _admin
from kep.consumers.lag.due import is_retry_topic
from kep.consumers.lag.errors import LagError, LagReadError
from kep.consumers.lag.probe import (
    NO_OFFSET,
    PROBE_GROUP_PREFIX,
    IsolationLevel,
    LagProbe,
    PartitionProbe,
)
from kep.consumers.lag.snapshot import GroupLag, LagSnapshot, PartitionLag
from kep.consumers.lag.status import Status, StatusTracker
from kep.topology.settings import KafkaSettings

log = structlog.get_logger(__name__)

TopicPartitionKey = tuple[str, int]
GroupPartitionKey = tuple[str, str, int]
Wanted = dict[TopicPartitionKey, int | None]


def compile_filter(group_filter: str | re.Pattern[str] | None) -> re.Pattern[str] | None:
    """The group filter as a pattern; a ``LagError`` naming the pattern when it does not compile."""
    if group_filter is None or isinstance(group_filter, re.Pattern):
        return group_filter
    try:
        return re.compile(group_filter)
    except re.error as exc:
        raise LagError(f"invalid group filter {group_filter!r}: {exc}") from exc


def probe_rounds(wanted: Mapping[str, Wanted]) -> list[dict[TopicPartitionKey, int]]:
    """Distinct positions per partition spread over as few probe calls as possible (one offset per partition
    per call). ``None`` (no commit) becomes ``NO_OFFSET``."""
    distinct: dict[TopicPartitionKey, set[int]] = {}
    for partitions in wanted.values():
        for key, committed in partitions.items():
            distinct.setdefault(key, set()).add(NO_OFFSET if committed is None else committed)
    rounds: list[dict[TopicPartitionKey, int]] = []
    for key, offsets in distinct.items():
        for index, offset in enumerate(sorted(offsets)):
            if index == len(rounds):
                rounds.append({})
            rounds[index][key] = offset
    return rounds


@dataclass(frozen=True, slots=True)
class _GroupView:
    group: str
    info: _admin.GroupInfo | None
    wanted: Wanted
    error: str | None


class LagMonitor:
    """Polls consumer-group lag. Not thread-safe: one poller at a time (the exporter thread, or ``kep lag``).

    >>> with LagMonitor(KafkaSettings(), group_filter="billing.*", window_s=120) as monitor:
    ...     snapshot = monitor.poll()
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        group_filter: str | re.Pattern[str] | None = None,
        window_s: float = 120.0,
        timeout_s: float = 5.0,
        isolation_level: IsolationLevel | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.group_filter = compile_filter(group_filter)
        self.timeout_s = timeout_s
        self._clock = clock
        self._wall = wall_clock
        self._tracker: StatusTracker[GroupPartitionKey] = StatusTracker(window_s, clock)
        self._admin = AdminClient(kafka.as_librdkafka_dict())
        self._probe = LagProbe(kafka, timeout_s=timeout_s, admin=self._admin, isolation_level=isolation_level)

    @property
    def window_s(self) -> float:
        return self._tracker.window_s

    def poll(self) -> LagSnapshot:
        """Read every matching group once. Raises ``LagReadError`` when the groups cannot be listed at all;
        anything narrower (one group, one partition) is reported as ``ERR`` in the snapshot."""
        started = self._clock()
        groups = self.groups()
        infos = _admin.describe_groups(self._admin, groups, self.timeout_s)
        committed = _admin.committed_offsets(self._admin, groups, self.timeout_s)
        topics = {t for offsets in committed.values() if isinstance(offsets, dict) for t, _ in offsets}
        topics |= {
            t for info in infos.values() if isinstance(info, _admin.GroupInfo) for t, _ in info.assigned
        }
        counts = _admin.partition_counts(self._admin, topics, self.timeout_s)
        views = [self._view(g, infos.get(g), committed[g], counts) for g in groups]
        # Partitions of topics missing from the metadata (deleted) are not probed: they are ERR at once.
        readable = {v.group: {k: c for k, c in v.wanted.items() if k[0] in counts} for v in views}
        answers = self._probe_all(readable)
        now = self._wall()
        result = tuple(self._assess(view, answers, counts, now) for view in views)
        errored = {v.group for v in views if v.error is not None}
        self._tracker.retain([k for k in self._tracker.keys() if k[0] in errored] + self._observed(result))
        return LagSnapshot(now, self._clock() - started, result)

    def poll_or_failed(self, previous: LagSnapshot | None = None) -> LagSnapshot:
        """``poll()``, except that a poll failing as a whole answers ``previous`` (or no groups) with every
        group ``ERR`` and ``error`` set, instead of raising: what a long-running poller shows."""
        started = self._clock()
        try:
            return self.poll()
        except Exception as exc:  # a poller must survive anything the cluster (or a closed client) does
            error = f"{type(exc).__name__}: {exc}"
            log.error("lag poll failed", error=error)
            now = self._wall()
            base = previous if previous is not None else LagSnapshot(now, 0.0, ())
            return base.failed(error, taken_at=now, duration_s=self._clock() - started)

    def groups(self) -> list[str]:
        """The ids of the groups this monitor reports: listed, matching the filter, not a lag probe's."""
        ids = _admin.list_group_ids(self._admin, self.timeout_s)
        pattern = self.group_filter
        return [
            g
            for g in ids
            if not g.startswith(PROBE_GROUP_PREFIX) and (pattern is None or pattern.fullmatch(g) is not None)
        ]

    @staticmethod
    def _view(
        group: str,
        info: _admin.GroupInfo | LagReadError | None,
        committed: dict[TopicPartitionKey, int] | LagReadError,
        counts: Mapping[str, int],
    ) -> _GroupView:
        described = info if isinstance(info, _admin.GroupInfo) else None
        if isinstance(committed, LagReadError):
            return _GroupView(group, described, {}, str(committed))
        topics = {t for t, _ in committed} | {t for t, _ in (described.assigned if described else ())}
        wanted: Wanted = dict(committed)
        for topic in topics:
            for partition in range(counts.get(topic, 0)):
                wanted.setdefault((topic, partition), None)
        return _GroupView(group, described, dict(sorted(wanted.items())), None)

    def _probe_all(self, wanted: Mapping[str, Wanted]) -> dict[tuple[str, int, int], PartitionProbe]:
        answers: dict[tuple[str, int, int], PartitionProbe] = {}
        rounds = probe_rounds(wanted)
        for positions, answered in zip(rounds, self._probe.probe_all(rounds), strict=True):
            for (topic, partition), answer in answered.items():
                answers[(topic, partition, positions[(topic, partition)])] = answer
        return answers

    def _assess(
        self,
        view: _GroupView,
        answers: Mapping[tuple[str, int, int], PartitionProbe],
        counts: Mapping[str, int],
        now: float,
    ) -> GroupLag:
        state = view.info.state if view.info is not None else "UNKNOWN"
        members = view.info.members if view.info is not None else None
        active = view.info.active if view.info is not None else None
        partitions: list[PartitionLag] = []
        statuses: dict[TopicPartitionKey, Status] = {}
        for (topic, partition), committed in view.wanted.items():
            requested = NO_OFFSET if committed is None else committed
            answer = answers.get((topic, partition, requested)) if topic in counts else None
            part = _partition_lag(topic, partition, committed, answer, now)
            key = (view.group, topic, partition)
            self._tracker.observe(
                key,
                committed=committed,
                log_end=part.log_end,
                log_start=part.position or 0,
                lag=part.lag_messages,
                not_due=_not_due(part, answer, now),
            )
            statuses[(topic, partition)] = self._tracker.status(key, consumers_active=active)
            partitions.append(part)
        group = GroupLag(view.group, state, members, tuple(partitions), view.error)
        return group.with_statuses(statuses)

    @staticmethod
    def _observed(groups: tuple[GroupLag, ...]) -> list[GroupPartitionKey]:
        return [(g.group, p.topic, p.partition) for g in groups for p in g.partitions]

    def close(self) -> None:
        self._probe.close()

    def __enter__(self) -> LagMonitor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _not_due(part: PartitionLag, answer: PartitionProbe | None, now: float) -> bool:
    """Whether the first record waiting on ``part`` is a retry not due yet: the probe gives a retry record's
    due time as its lag start (``consumers.lag.due``), so it lies ahead only for those."""
    return (
        answer is not None
        and bool(part.lag_messages)
        and answer.next_timestamp_ms is not None
        and is_retry_topic(part.topic)
        and answer.next_timestamp_ms / 1000.0 > now
    )


def _partition_lag(
    topic: str, partition: int, committed: int | None, answer: PartitionProbe | None, now: float
) -> PartitionLag:
    if answer is None:
        return PartitionLag(topic, partition, committed, committed, None, None, None, Status.ERR)
    position = answer.position if answer.position is not None else (committed or 0)
    lag = answer.lag_messages if answer.lag_messages is not None else max(0, answer.log_end - position)
    seconds = 0.0
    if lag > 0 and answer.next_timestamp_ms is not None:
        seconds = max(0.0, now - answer.next_timestamp_ms / 1000.0)
    return PartitionLag(
        topic,
        partition,
        committed,
        position,
        answer.log_end,
        lag,
        seconds,
        log_start=answer.log_start,
        below_log_start=answer.below_log_start,
    )
