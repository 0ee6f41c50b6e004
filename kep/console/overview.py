"""The groups page's model: every group of the topology and of the cluster, with lag, retry backlog and dead
letters, built from the latest ``LagMonitor`` snapshot (the code path of ``kep lag`` and the exporter) and the
dead-letter index.

``Poller`` keeps both fresh on one background thread: a lag poll every ``poll_interval_s``, then an index
refresh of every dead-letter topic the topology declares.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from kep.console.index import Counts, DeadLetterIndex
from kep.consumers.dlq import dead_letter_topics
from kep.consumers.dlq.replay import REPLAY_GROUP_PREFIX
from kep.consumers.lag import GroupLag, LagMonitor, LagSnapshot, PartitionLag, Status
from kep.topology.model import Topology

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class TierView:
    topic: str
    delay: str
    backlog: int | None  # None: the group never read this tier (no offsets on it)


@dataclass(frozen=True, slots=True)
class TopicView:
    source: str
    partitions: tuple[PartitionLag, ...]
    tiers: tuple[TierView, ...]
    dlq: str | None
    dead_letters: Counts | None

    @property
    def lag_messages(self) -> int:
        return sum(p.lag_messages or 0 for p in self.partitions)

    @property
    def max_lag_seconds(self) -> float:
        return max((p.lag_seconds or 0.0 for p in self.partitions), default=0.0)

    @property
    def retry_backlog(self) -> int:
        return sum(t.backlog or 0 for t in self.tiers)


@dataclass(frozen=True, slots=True)
class GroupView:
    name: str
    declared: bool
    lag: GroupLag | None
    topics: tuple[TopicView, ...]

    @property
    def status(self) -> str:
        return self.lag.status.value if self.lag is not None else "ABSENT"

    @property
    def state(self) -> str:
        return self.lag.state if self.lag is not None else "no offsets on the cluster"

    @property
    def members(self) -> str:
        if self.lag is None or self.lag.members is None:
            return "-"
        return str(self.lag.members)

    @property
    def dead_letters_pending(self) -> int:
        return sum(t.dead_letters.pending for t in self.topics if t.dead_letters is not None)


@dataclass(frozen=True, slots=True)
class Overview:
    groups: tuple[GroupView, ...]
    taken_at: float | None
    error: str | None


def build_overview(topology: Topology, snapshot: LagSnapshot | None, index: DeadLetterIndex) -> Overview:
    """Topology groups first (in declaration order), then groups only the cluster knows."""
    lags = {g.group: g for g in snapshot.groups} if snapshot is not None else {}
    dlqs = {(d.group, d.source): d.topic for d in dead_letter_topics(topology)}
    counts = index.counts(list(dlqs.values()))
    views = []
    for spec in topology.groups:
        lag = lags.get(spec.name)
        topics = []
        for source in spec.topics:
            tiers = tuple(
                TierView(t.topic, t.suffix, _backlog(lag, t.topic)) for t in spec.retry_tiers(source)
            )
            dlq = dlqs.get((spec.name, source))
            topics.append(
                TopicView(
                    source,
                    _partitions(lag, source),
                    tiers,
                    dlq,
                    counts.get(dlq) if dlq is not None else None,
                )
            )
        views.append(GroupView(spec.name, True, lag, tuple(topics)))
    declared = {g.name for g in topology.groups}
    for name, lag in lags.items():
        if name in declared or name.startswith(REPLAY_GROUP_PREFIX):  # replay progress is not a consumer
            continue
        sources = sorted({p.topic for p in lag.partitions})
        topics = [TopicView(s, _partitions(lag, s), (), None, None) for s in sources]
        views.append(GroupView(name, False, lag, tuple(topics)))
    return Overview(
        tuple(views),
        snapshot.taken_at if snapshot is not None else None,
        snapshot.error if snapshot is not None else None,
    )


def _partitions(lag: GroupLag | None, topic: str) -> tuple[PartitionLag, ...]:
    if lag is None:
        return ()
    return tuple(p for p in lag.partitions if p.topic == topic)


def _backlog(lag: GroupLag | None, topic: str) -> int | None:
    parts = _partitions(lag, topic)
    if not parts:
        return None
    return sum(p.lag_messages or 0 for p in parts)


STATUS_CLASS = {
    Status.OK.value: "ok",
    Status.WARN.value: "warn",
    Status.STALL.value: "stall",
    Status.STOP.value: "stop",
    Status.ERR.value: "err",
    "ABSENT": "absent",
}


@dataclass(slots=True)
class Poller:
    """Polls lag and refreshes the dead-letter index on a background thread until ``stop()``."""

    make_monitor: Callable[[], LagMonitor]
    index: DeadLetterIndex
    topics: list[str]
    interval_s: float
    snapshot: LagSnapshot | None = None
    polls: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kep-console-poller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        monitor: LagMonitor | None = None
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                if monitor is None:
                    try:
                        monitor = self.make_monitor()
                    except Exception as exc:  # noqa: BLE001 - reported on the page, retried next round
                        log.error("lag monitor cannot start", error=f"{type(exc).__name__}: {exc}")
                if monitor is not None:
                    self.snapshot = monitor.poll_or_failed(self.snapshot)
                for topic in self.topics:
                    if self._stop.is_set():
                        break
                    self.index.refresh(topic, budget_s=max(1.0, self.interval_s))
                with self._changed:
                    self.polls += 1
                    self._changed.notify_all()
                self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))
        finally:
            if monitor is not None:
                monitor.close()

    def wait_for_poll(self, timeout: float) -> bool:
        """Wait until the next round (lag poll and index refresh) is done; ``False`` at the timeout."""
        with self._changed:
            seen = self.polls
            return self._changed.wait_for(lambda: self.polls > seen, timeout)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
