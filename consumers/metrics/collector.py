"""Scrape-time worker state: offsets, lag in messages and in seconds, paused and in-flight counts.

``WorkerStateCollector`` is a custom Prometheus collector. At each scrape it asks the bound
``WorkerStateSource`` for a snapshot (waiting at most ``source_timeout_s``, else serving the last one) and,
for lag in seconds and for the log end of paused partitions (which librdkafka stops refreshing), a probe
through ``ProbeCache`` (rate-limited, bounded wait). Definitions (also in ``docs/metrics.md``):

* lag (messages) = the records left that the probe measured at the committed offset (transaction markers and
  aborted records not counted) while its answer is for the current commit; otherwise log end - committed;
  with no commit yet, log end - log start (from the state, else the probe's answer, else 0);
* processed lag = log end - processed (falls back to committed, then log start);
* lag (seconds) = now - timestamp of the record at the committed offset; 0 when caught up or empty;
* log end = the larger of the fetch high watermark and the probe's answer (log ends only grow).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kep.consumers.metrics import names
from kep.consumers.metrics.probe_cache import ProbeCache
from kep.consumers.metrics.state import (
    NO_COMMIT_POSITION,
    PartitionState,
    ProbeResult,
    TopicPartitionKey,
    WorkerStateSource,
)

log = structlog.get_logger(__name__)

_PARTITION_LABELS = ["group", "topic", "partition"]
SNAPSHOT_MAX_AGE_S = 60.0
"""The oldest worker snapshot a scrape serves when the source does not answer in time."""


def _probe_position(state: PartitionState) -> int:
    """Where to probe: the commit, else the known log start, else ``NO_COMMIT_POSITION`` (log start)."""
    if state.committed is not None:
        return state.committed
    return state.log_start if state.log_start is not None else NO_COMMIT_POSITION


def _base_offset(state: PartitionState, result: ProbeResult | None) -> int:
    """Where the group resumes: the commit, else the log start (from the state, else the probe, else 0)."""
    if state.committed is not None:
        return state.committed
    if state.log_start is not None:
        return state.log_start
    position = getattr(result, "position", None)
    return position if isinstance(position, int) and position >= 0 else 0


def _measured_lag(base: int, result: ProbeResult | None) -> int | None:
    """The probe's lag when its answer is for ``base``: read from there, or from the log start because
    ``base`` is below it (the answer may be for an older commit: then ``None``)."""
    lag = getattr(result, "lag_messages", None)
    position = getattr(result, "position", None)
    if not isinstance(lag, int) or not isinstance(position, int):
        return None
    if position == base or (getattr(result, "below_log_start", False) and base < position):
        return lag
    return None


def _log_end(state: PartitionState, result: ProbeResult | None) -> int | None:
    candidates = [v for v in (state.log_end, result.log_end if result is not None else None) if v is not None]
    return max(candidates) if candidates else None


def _needs_probe(state: PartitionState) -> bool:
    """Paused partitions (stale watermark), unknown log ends, and partitions with lag (for lag in seconds)."""
    return state.paused or state.log_end is None or state.log_end > max(0, _probe_position(state))


def _lag_seconds(lag: int, result: ProbeResult | None, now_wall: float) -> float | None:
    if lag <= 0:
        return 0.0
    if result is None:
        return None
    if result.next_timestamp_ms is None:
        return 0.0
    return max(0.0, now_wall - result.next_timestamp_ms / 1000.0)


class _Families:
    """The gauge families of one scrape."""

    def __init__(self) -> None:
        def part(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=_PARTITION_LABELS)

        def grp(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=["group"])

        self.lag = part(names.CONSUMER_LAG_MESSAGES, "Log end offset minus the committed offset.")
        self.processed_lag = part(
            names.CONSUMER_PROCESSED_LAG_MESSAGES,
            "Log end offset minus the next offset after processed work.",
        )
        self.lag_seconds = part(
            names.CONSUMER_LAG_SECONDS, "Age of the record at the committed offset; 0 when caught up."
        )
        self.log_end = part(names.CONSUMER_LOG_END_OFFSET, "Log end offset (high watermark).")
        self.committed = part(names.CONSUMER_COMMITTED_OFFSET, "Offset the group resumes from.")
        self.processed = part(names.CONSUMER_PROCESSED_OFFSET, "Next offset after the processed prefix.")
        self.assigned = grp(names.CONSUMER_ASSIGNED_PARTITIONS, "Partitions assigned to this worker.")
        self.paused = grp(names.CONSUMER_PAUSED_PARTITIONS, "Assigned partitions currently paused.")
        self.in_flight = grp(names.CONSUMER_IN_FLIGHT_MESSAGES, "Messages fetched and not yet finished.")
        self.probe_ts = grp(
            names.CONSUMER_LAG_PROBE_TIMESTAMP_SECONDS, "Unix time of the last lag probe that answered."
        )

    def all(self) -> list[Metric]:
        return [
            self.lag,
            self.processed_lag,
            self.lag_seconds,
            self.log_end,
            self.committed,
            self.processed,
            self.assigned,
            self.paused,
            self.in_flight,
            self.probe_ts,
        ]


@dataclass(frozen=True, slots=True)
class _Snapshot:
    states: Sequence[PartitionState]
    in_flight: int
    at: float  # monotonic time it was taken


class SnapshotReader:
    """Reads the source in a daemon thread, one read at a time, and waits at most ``timeout_s`` for it.

    A source that does not answer in time (e.g. a Kafka client call blocked behind the poll loop) must not
    hang the scrape: the last snapshot is served instead (none once it is older than ``SNAPSHOT_MAX_AGE_S``),
    and a warning logged.
    """

    def __init__(self, source: WorkerStateSource, timeout_s: float) -> None:
        self.source = source
        self._timeout = timeout_s
        self._lock = threading.Lock()
        self._last: _Snapshot | None = None
        self._running: threading.Event | None = None

    def read(self) -> _Snapshot | None:
        with self._lock:
            done = self._running
            if done is None:
                done = self._running = threading.Event()
                threading.Thread(target=self._run, args=(done,), name="kep-state-read", daemon=True).start()
        if done.wait(self._timeout):
            return self._last
        last = self._last
        age = None if last is None else time.monotonic() - last.at
        log.warning(
            "worker state source did not answer in time",
            timeout_s=self._timeout,
            last_snapshot_age_s=None if age is None else round(age, 3),
        )
        return last if age is not None and age <= SNAPSHOT_MAX_AGE_S else None

    def _run(self, done: threading.Event) -> None:
        try:
            snapshot: _Snapshot | None = _Snapshot(
                tuple(self.source.partition_states()), self.source.in_flight(), time.monotonic()
            )
        except Exception as exc:  # a failing source must never break a scrape
            log.warning("worker state source failed", error=str(exc), error_type=type(exc).__name__)
            snapshot = None
        with self._lock:
            if snapshot is not None:
                self._last = snapshot
            self._running = None
        done.set()


class WorkerStateCollector(Collector):
    """Yields the worker's partition gauges at scrape time from the bound source (nothing until bound)."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._reader: SnapshotReader | None = None
        self._probes: ProbeCache | None = None

    def bind(
        self, source: WorkerStateSource, probes: ProbeCache | None = None, source_timeout_s: float = 1.0
    ) -> None:
        self._reader = SnapshotReader(source, source_timeout_s)
        self._probes = probes

    def describe(self) -> Iterable[Metric]:
        return _Families().all()

    def collect(self) -> Iterator[Metric]:
        families = _Families()
        snapshot = self._reader.read() if self._reader is not None else None
        if snapshot is not None:
            self._fill(families, snapshot)
        yield from families.all()

    def _fill(self, f: _Families, snapshot: _Snapshot) -> None:
        states = snapshot.states
        group = self.group
        f.assigned.add_metric([group], len(states))
        f.paused.add_metric([group], sum(1 for s in states if s.paused))
        f.in_flight.add_metric([group], snapshot.in_flight)
        results: dict[TopicPartitionKey, ProbeResult] = {}
        if self._probes is not None:
            wanted = {(s.topic, s.partition): _probe_position(s) for s in states if _needs_probe(s)}
            results = self._probes.lookup(wanted)
            if self._probes.last_success_wall is not None:
                f.probe_ts.add_metric([group], self._probes.last_success_wall)
        now_wall = time.time()
        for s in states:
            labels = [group, s.topic, str(s.partition)]
            result = results.get((s.topic, s.partition))
            if s.committed is not None:
                f.committed.add_metric(labels, s.committed)
            if s.processed is not None:
                f.processed.add_metric(labels, s.processed)
            end = _log_end(s, result)
            if end is None:
                continue
            base = _base_offset(s, result)
            measured = _measured_lag(base, result)
            lag = measured if measured is not None else max(0, end - base)
            done = s.processed if s.processed is not None else base
            f.log_end.add_metric(labels, end)
            f.lag.add_metric(labels, lag)
            f.processed_lag.add_metric(labels, max(0, end - done))
            seconds = _lag_seconds(lag, result, now_wall)
            if seconds is not None:
                f.lag_seconds.add_metric(labels, seconds)
