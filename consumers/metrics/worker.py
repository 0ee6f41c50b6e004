"""``WorkerMetrics``: the one metrics object of a worker, on an injected ``CollectorRegistry``.

The hot-path methods (``handled``, ``failed``, ...) are called once per message: labelled children are cached
per topic so a call is a dict lookup plus the counter update, and a disabled instance returns at once.
Scrape-time state (offsets, lag) comes from ``bind``: see ``consumers.metrics.collector``.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, Info

from kep.consumers.metrics import names
from kep.consumers.metrics.collector import WorkerStateCollector
from kep.consumers.metrics.errors import MetricsError
from kep.consumers.metrics.probe_cache import ProbeCache
from kep.consumers.metrics.state import Probe, WorkerStateSource

HANDLER_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_EXCEPTION_TYPES = 50
"""Distinct ``exception`` label values per worker; later types are counted as ``other``."""
OTHER_EXCEPTION = "other"


def _kep_version() -> str:
    try:
        return version("kep-kafka")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0.0.0"


@dataclass(slots=True)
class _TopicChildren:
    processed: Any
    duration: Any
    dead_lettered: Any
    duplicates: Any


@dataclass(slots=True)
class _Tally:
    """Handled messages of one topic counted by one thread since its last ``flush``."""

    count: int = 0
    total_s: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(HANDLER_BUCKETS) + 1))


class WorkerMetrics:
    """Counters, histograms and scrape-time gauges of one worker in consumer group ``group``.

    >>> metrics = WorkerMetrics("billing", registry=CollectorRegistry())
    >>> metrics.handled("orders", 0.004)
    """

    def __init__(
        self, group: str, *, registry: CollectorRegistry | None = None, enabled: bool = True
    ) -> None:
        self.group = group
        self.enabled = enabled
        self.registry = registry if registry is not None else CollectorRegistry()
        self._topics: dict[str, _TopicChildren] = {}
        self._failed: dict[tuple[str, str], Any] = {}
        self._retried: dict[tuple[str, str], Any] = {}
        self._exception_types: set[str] = set()
        self._collector = WorkerStateCollector(group)
        self._probes: ProbeCache | None = None
        self._local = threading.local()  # per thread: {topic: _Tally} of count_handled, until flush()
        if enabled:
            self._register()

    def _register(self) -> None:
        r = self.registry
        topic_labels = ["group", "topic"]
        self._processed = Counter(
            names.MESSAGES_PROCESSED_TOTAL, "Messages handled successfully.", topic_labels, registry=r
        )
        self._failed_counter = Counter(
            names.MESSAGES_FAILED_TOTAL,
            "Handler failures by exception type.",
            [*topic_labels, "exception"],
            registry=r,
        )
        self._retried_counter = Counter(
            names.MESSAGES_RETRIED_TOTAL,
            "Messages sent to a retry tier.",
            [*topic_labels, "tier"],
            registry=r,
        )
        self._dead_lettered = Counter(
            names.MESSAGES_DEAD_LETTERED_TOTAL,
            "Messages sent to the dead-letter topic.",
            topic_labels,
            registry=r,
        )
        self._duplicates = Counter(
            names.MESSAGES_DUPLICATE_SKIPPED_TOTAL,
            "Messages skipped by their idempotency key.",
            topic_labels,
            registry=r,
        )
        self._handler_duration = Histogram(
            names.HANDLER_DURATION_SECONDS,
            "Handler run time, successes and failures.",
            topic_labels,
            buckets=HANDLER_BUCKETS,
            registry=r,
        )
        self._commit_duration = Histogram(
            names.COMMIT_DURATION_SECONDS,
            "Offset commit round trip.",
            ["group"],
            buckets=COMMIT_BUCKETS,
            registry=r,
        ).labels(self.group)
        self._commit_failures = Counter(
            names.COMMIT_FAILURES_TOTAL, "Offset commits that failed.", ["group"], registry=r
        ).labels(self.group)
        rebalances = Counter(
            names.CONSUMER_REBALANCES_TOTAL,
            "Partition assignment changes by kind.",
            ["group", "kind"],
            registry=r,
        )
        self._rebalances = {kind: rebalances.labels(self.group, kind) for kind in names.REBALANCE_KINDS}
        Info(names.BUILD_INFO.removesuffix("_info"), "kep version.", registry=r).info(
            {"version": _kep_version()}
        )
        r.register(self._collector)

    # -- hot path -------------------------------------------------------------------------------------------

    def _children(self, topic: str) -> _TopicChildren:
        children = self._topics.get(topic)
        if children is None:
            g = self.group
            children = _TopicChildren(
                self._processed.labels(g, topic),
                self._handler_duration.labels(g, topic),
                self._dead_lettered.labels(g, topic),
                self._duplicates.labels(g, topic),
            )
            self._topics[topic] = children
        return children

    def declare(self, topics: Iterable[str]) -> None:
        """Create the per-topic series at 0 so ``rate()`` and alerts see them before the first message."""
        if self.enabled:
            for topic in topics:
                self._children(topic)

    def handled(self, topic: str, duration_s: float) -> None:
        """A message was processed successfully in ``duration_s`` seconds."""
        if not self.enabled:
            return
        children = self._topics.get(topic) or self._children(topic)
        children.processed.inc()
        children.duration.observe(duration_s)

    def count_handled(self, topic: str, duration_s: float) -> None:
        """``handled``, counted in this thread and added to the metrics at its next ``flush()``: no lock per
        message. The runtime's lanes count this way and flush after each batch of work."""
        if not self.enabled:
            return
        try:
            tallies: dict[str, _Tally] = self._local.tallies
        except AttributeError:
            tallies = self._local.tallies = {}
        tally = tallies.get(topic)
        if tally is None:
            tally = tallies[topic] = _Tally()
        tally.count += 1
        tally.total_s += duration_s
        tally.buckets[bisect_left(HANDLER_BUCKETS, duration_s)] += 1  # the first bucket with le >= duration

    def flush(self) -> None:
        """Add what this thread counted with ``count_handled`` to the metrics."""
        tallies: dict[str, _Tally] | None = getattr(self._local, "tallies", None)
        if not tallies:
            return
        for topic, tally in tallies.items():
            if not tally.count:
                continue
            children = self._topics.get(topic) or self._children(topic)
            children.processed.inc(tally.count)
            _observe_many(children.duration, tally)
            tally.count, tally.total_s = 0, 0.0
            tally.buckets[:] = [0] * len(tally.buckets)

    def failed(self, topic: str, exception_type: str, duration_s: float) -> None:
        """The handler raised ``exception_type`` after ``duration_s`` seconds."""
        if not self.enabled:
            return
        child = self._failed.get((topic, exception_type))
        if child is None:
            child = self._failed_child(topic, exception_type)
        child.inc()
        (self._topics.get(topic) or self._children(topic)).duration.observe(duration_s)

    def _failed_child(self, topic: str, exception_type: str) -> Any:
        label = exception_type
        if label not in self._exception_types:
            if len(self._exception_types) >= MAX_EXCEPTION_TYPES:
                label = OTHER_EXCEPTION
            else:
                self._exception_types.add(label)
        child = self._failed_counter.labels(self.group, topic, label)
        self._failed[(topic, exception_type)] = child
        return child

    def retried(self, topic: str, tier: str) -> None:
        """A message went to retry tier ``tier``: ``"10s"``, or ``"blocking"`` for an in-place retry."""
        if not self.enabled:
            return
        child = self._retried.get((topic, tier))
        if child is None:
            child = self._retried[(topic, tier)] = self._retried_counter.labels(self.group, topic, tier)
        child.inc()

    def dead_lettered(self, topic: str) -> None:
        if self.enabled:
            (self._topics.get(topic) or self._children(topic)).dead_lettered.inc()

    def skipped_duplicate(self, topic: str) -> None:
        if self.enabled:
            (self._topics.get(topic) or self._children(topic)).duplicates.inc()

    def commit(self, duration_s: float, ok: bool) -> None:
        """An offset commit took ``duration_s`` seconds; ``ok=False`` counts a failure."""
        if not self.enabled:
            return
        self._commit_duration.observe(duration_s)
        if not ok:
            self._commit_failures.inc()

    def rebalance(self, kind: str) -> None:
        """Partitions were assigned, revoked or lost (``kind`` in ``REBALANCE_KINDS``)."""
        if not self.enabled:
            return
        child = self._rebalances.get(kind)
        if child is None:
            raise MetricsError(f"rebalance kind {kind!r} is not one of {', '.join(names.REBALANCE_KINDS)}")
        child.inc()

    # -- scrape time ----------------------------------------------------------------------------------------

    def bind(
        self,
        source: WorkerStateSource,
        probe: Probe | None = None,
        *,
        probe_interval_s: float = 5.0,
        probe_timeout_s: float = 2.0,
        source_timeout_s: float = 1.0,
    ) -> None:
        """Serve the partition gauges from ``source`` at scrape time (binding again replaces the source).

        ``probe`` (e.g. ``LagProbe(settings).probe``) answers lag in seconds and the log end of paused
        partitions; it runs at most once per ``probe_interval_s`` and a scrape waits at most
        ``probe_timeout_s`` for it. Without a probe, lag in seconds is exported only where the lag is 0.
        A scrape waits at most ``source_timeout_s`` for ``source`` and otherwise serves its last snapshot.
        """
        timeouts = {
            "probe_interval_s": probe_interval_s,
            "probe_timeout_s": probe_timeout_s,
            "source_timeout_s": source_timeout_s,
        }
        negative = [f"{name}={value}" for name, value in timeouts.items() if value < 0]
        if negative:
            raise MetricsError(f"bind: durations must be >= 0, got {', '.join(negative)}")
        self._probes = (
            ProbeCache(probe, interval_s=probe_interval_s, timeout_s=probe_timeout_s)
            if probe is not None
            else None
        )
        self._collector.bind(source, self._probes, source_timeout_s=source_timeout_s)


def _observe_many(histogram: Any, tally: _Tally) -> None:
    """Add a tally's observations to a labelled ``Histogram`` child: one update per bucket instead of one
    locked update per observation. Through the child's value objects (``_sum``, ``_buckets``, as
    ``Histogram.observe`` itself does); a client without them gets each bucket's upper bound observed."""
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if (
        buckets is None or total is None or len(buckets) != len(tally.buckets)
    ):  # pragma: no cover - other client
        bounds = (*HANDLER_BUCKETS, float("inf"))
        for bound, n in zip(bounds, tally.buckets, strict=True):
            for _ in range(n):
                histogram.observe(min(bound, tally.total_s))
        return
    total.inc(tally.total_s)
    for value, n in zip(buckets, tally.buckets, strict=True):
        if n:
            value.inc(n)
