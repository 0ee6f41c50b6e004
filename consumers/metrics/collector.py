"""Scrape-time worker state: offsets, lag in messages and in seconds, paused and in-flight counts.

``WorkerStateCollector`` is a custom Prometheus collector. At each scrape it asks the bound
``WorkerStateSource`` for a snapshot and, for lag in seconds and for the log end of paused partitions (which
librdkafka stops refreshing), a probe. Probes are rate-limited (results younger than ``probe_interval_s`` are
reused) and a scrape waits at most ``probe_timeout_s`` for one; a slower probe finishes in the background and
serves the next scrape. Definitions (also in ``docs/metrics.md``):

* lag (messages) = log end - committed; with no commit yet, log end - log start (from the state, else the
  probe's answer, else 0);
* processed lag = log end - processed (falls back to committed, then log start);
* lag (seconds) = now - timestamp of the record at the committed offset; 0 when caught up or empty;
* log end = the larger of the fetch high watermark and the probe's answer (log ends only grow).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from consumers.metrics import names
from consumers.metrics.state import (
    NO_COMMIT_POSITION,
    PartitionState,
    Probe,
    ProbeResult,
    TopicPartitionKey,
    WorkerStateSource,
)

log = structlog.get_logger(__name__)

_PARTITION_LABELS = ["group", "topic", "partition"]


@dataclass(frozen=True, slots=True)
class _Cached:
    result: ProbeResult
    at: float  # monotonic time the probe answered


class ProbeCache:
    """Runs a probe at most once per ``interval_s``, one at a time, in a daemon thread.

    ``lookup`` waits at most ``timeout_s`` for the probe it started or found running, and otherwise answers
    from the last results (each dropped ``stale_after_s`` after it was measured)."""

    def __init__(
        self,
        probe: Probe,
        *,
        interval_s: float = 5.0,
        timeout_s: float = 2.0,
        stale_after_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = probe
        self._interval = interval_s
        self._timeout = timeout_s
        self._stale_after = stale_after_s if stale_after_s is not None else max(4 * interval_s, 30.0)
        self._clock = clock
        self._lock = threading.Lock()
        self._results: dict[TopicPartitionKey, _Cached] = {}
        self._asked: frozenset[TopicPartitionKey] = frozenset()
        self._started_at: float | None = None
        self._running: threading.Event | None = None
        self.last_success_wall: float | None = None
        self.runs = 0

    def lookup(self, positions: Mapping[TopicPartitionKey, int]) -> dict[TopicPartitionKey, ProbeResult]:
        """Results for the partitions of ``positions`` (absent: unknown), probing first when one is due."""
        if not positions:
            return {}
        done = self._maybe_start(positions)
        if done is not None:
            done.wait(self._timeout)
        now = self._clock()
        with self._lock:
            return {
                key: cached.result
                for key in positions
                if (cached := self._results.get(key)) is not None and now - cached.at <= self._stale_after
            }

    def _maybe_start(self, positions: Mapping[TopicPartitionKey, int]) -> threading.Event | None:
        now = self._clock()
        with self._lock:
            if self._running is not None:
                return self._running
            due = self._started_at is None or now - self._started_at >= self._interval
            if not due and set(positions) <= self._asked:
                return None
            done = threading.Event()
            self._running = done
            self._started_at = now
            self._asked = frozenset(positions)
        snapshot = dict(positions)
        threading.Thread(target=self._run, args=(snapshot, done), name="kep-lag-probe", daemon=True).start()
        return done

    def _run(self, positions: dict[TopicPartitionKey, int], done: threading.Event) -> None:
        try:
            answers = self._probe(positions)
        except Exception as exc:  # a failed probe must never break a scrape
            log.warning("lag probe failed", error=str(exc), error_type=type(exc).__name__)
            answers = {}
        now = self._clock()
        with self._lock:
            for key, result in answers.items():
                self._results[key] = _Cached(result, now)
            for key in [k for k, c in self._results.items() if now - c.at > self._stale_after]:
                del self._results[key]
            if answers:
                self.last_success_wall = time.time()
            self.runs += 1
            self._running = None
        done.set()


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


class WorkerStateCollector(Collector):
    """Yields the worker's partition gauges at scrape time from the bound source (nothing until bound)."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._source: WorkerStateSource | None = None
        self._probes: ProbeCache | None = None

    def bind(self, source: WorkerStateSource, probes: ProbeCache | None = None) -> None:
        self._source = source
        self._probes = probes

    def describe(self) -> Iterable[Metric]:
        return _Families().all()

    def collect(self) -> Iterator[Metric]:
        families = _Families()
        source = self._source
        if source is not None:
            self._fill(families, source)
        yield from families.all()

    def _fill(self, f: _Families, source: WorkerStateSource) -> None:
        states: Sequence[PartitionState] = source.partition_states()
        group = self.group
        f.assigned.add_metric([group], len(states))
        f.paused.add_metric([group], sum(1 for s in states if s.paused))
        f.in_flight.add_metric([group], source.in_flight())
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
            lag = max(0, end - base)
            done = s.processed if s.processed is not None else base
            f.log_end.add_metric(labels, end)
            f.lag.add_metric(labels, lag)
            f.processed_lag.add_metric(labels, max(0, end - done))
            seconds = _lag_seconds(lag, result, now_wall)
            if seconds is not None:
                f.lag_seconds.add_metric(labels, seconds)
