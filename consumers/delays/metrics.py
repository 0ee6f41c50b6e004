"""The delay forwarder's metrics: records pending per tier (scrape time), forward lateness, what it forwarded."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["DelayMetrics"]

LATENESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _PendingCollector(Collector):
    def __init__(self, pending: Callable[[], Mapping[str, int]]) -> None:
        self._pending = pending

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "kep_delay_pending_records",
            "Delayed records in a delay tier not yet forwarded (log end minus committed offset), "
            "on this forwarder's partitions.",
            labels=["tier"],
        )
        for tier, count in sorted(self._pending().items()):
            family.add_metric([tier], count)
        yield family


class DelayMetrics:
    """Registered on ``registry`` (the worker's, inside ``kep run``); ``pending`` is read at scrape time."""

    def __init__(self, registry: CollectorRegistry, pending: Callable[[], Mapping[str, int]]) -> None:
        self.registry = registry
        self.lateness = Histogram(
            "kep_delay_forward_lateness_seconds",
            "How long after its due time a delayed record was acknowledged on its destination topic.",
            buckets=LATENESS_BUCKETS,
            registry=registry,
        )
        self.forwarded = Counter(
            "kep_delay_forwarded_records",
            "Records the delay forwarder produced, by where: destination, tier (moved to a smaller tier) or dlq.",
            ["to"],
            registry=registry,
        )
        registry.register(_PendingCollector(pending))
