"""The schedulers' metrics, on the registry they are given (a worker's, under ``kep run``).

* ``kep_schedule_firings_total{schedule}``: firings published and acknowledged by the broker, by this process;
* ``kep_schedule_firings_skipped_total{schedule}``: missed firings dropped (``missed: skip`` past ``grace``, or
  beyond ``catch_up_limit``);
* ``kep_schedule_publish_failures_total{schedule}``: firings the broker did not take (published again);
* ``kep_schedule_last_firing_timestamp_seconds{schedule}``: the time of the last acknowledged firing;
* ``kep_schedule_leader``: 1 while this process leads (publishes), else 0.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["SCHEDULE_METRIC_NAMES", "SchedulerMetrics"]

FIRINGS_TOTAL = "kep_schedule_firings_total"
SKIPPED_TOTAL = "kep_schedule_firings_skipped_total"
FAILURES_TOTAL = "kep_schedule_publish_failures_total"
LAST_FIRING = "kep_schedule_last_firing_timestamp_seconds"
LEADER = "kep_schedule_leader"
SCHEDULE_METRIC_NAMES = frozenset({FIRINGS_TOTAL, SKIPPED_TOTAL, FAILURES_TOTAL, LAST_FIRING, LEADER})


class SchedulerMetrics:
    """The scheduler's counters and gauges; ``registry`` None: a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.firings = Counter(
            FIRINGS_TOTAL, "Schedule firings published and acknowledged.", ["schedule"], registry=r
        )
        self.skipped = Counter(SKIPPED_TOTAL, "Missed schedule firings dropped.", ["schedule"], registry=r)
        self.failures = Counter(
            FAILURES_TOTAL, "Schedule firings the broker did not take.", ["schedule"], registry=r
        )
        self.last_firing = Gauge(
            LAST_FIRING, "Time of the last acknowledged firing.", ["schedule"], registry=r
        )
        self.leader = Gauge(LEADER, "1 while this process leads the schedulers, else 0.", registry=r)
