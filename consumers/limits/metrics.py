"""Metrics of the limits, on the worker's registry. Labels: ``group``, ``handler`` (the limit's name: a topic,
an event type or a handler) and ``limit`` (``rate`` or ``concurrency``); never a ``per`` value."""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LIMIT_HELD_TOTAL: Final = "kep_limit_held_total"
LIMIT_WAIT_SECONDS: Final = "kep_limit_wait_seconds"
LIMIT_RATE: Final = "kep_limit_rate_per_second"
LIMIT_CONCURRENCY: Final = "kep_limit_concurrency"
LIMIT_IN_USE: Final = "kep_limit_in_use"
LIMIT_STORE_ERRORS_TOTAL: Final = "kep_limit_store_errors_total"
LIMIT_METRIC_NAMES: Final = frozenset(
    {
        LIMIT_HELD_TOTAL,
        LIMIT_WAIT_SECONDS,
        LIMIT_RATE,
        LIMIT_CONCURRENCY,
        LIMIT_IN_USE,
        LIMIT_STORE_ERRORS_TOTAL,
    }
)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class LimitMetrics:
    """``None`` registry: counted nowhere (a worker with metrics disabled)."""

    def __init__(self, group: str, registry: CollectorRegistry | None) -> None:
        self.group = group
        self.enabled = registry is not None
        if registry is None:
            return
        labels = ["group", "handler"]
        self._held = Counter(
            LIMIT_HELD_TOTAL,
            "Messages held back by a limit before their handler ran.",
            [*labels, "limit"],
            registry=registry,
        )
        self._wait = Histogram(
            LIMIT_WAIT_SECONDS,
            "Time a limited message waited for its limit before its handler ran.",
            labels,
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self._rate = Gauge(
            LIMIT_RATE, "The rate limit in force (starts per second).", labels, registry=registry
        )
        self._slots = Gauge(LIMIT_CONCURRENCY, "The concurrency limit in force.", labels, registry=registry)
        self._in_use = Gauge(
            LIMIT_IN_USE, "Concurrency slots this worker holds now.", labels, registry=registry
        )
        self._errors = Counter(
            LIMIT_STORE_ERRORS_TOTAL,
            "Limit checks the store could not answer (waited out).",
            labels,
            registry=registry,
        )

    def declare(self, handler: str, rate_per_s: float | None, slots: int | None) -> None:
        if not self.enabled:
            return
        if rate_per_s is not None:
            self._rate.labels(self.group, handler).set(rate_per_s)
        if slots is not None:
            self._slots.labels(self.group, handler).set(slots)
            self._in_use.labels(self.group, handler).set(0)
        self._wait.labels(self.group, handler)

    def held(self, handler: str, limit: str) -> None:
        if self.enabled:
            self._held.labels(self.group, handler, limit).inc()

    def waited(self, handler: str, seconds: float) -> None:
        if self.enabled:
            self._wait.labels(self.group, handler).observe(seconds)

    def in_use(self, handler: str, delta: int) -> None:
        if self.enabled:
            self._in_use.labels(self.group, handler).inc(delta)

    def store_error(self, handler: str) -> None:
        if self.enabled:
            self._errors.labels(self.group, handler).inc()
