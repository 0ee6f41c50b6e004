"""Worker metrics: counters and histograms on the hot path, scrape-time lag, health, and the HTTP server.

>>> metrics = WorkerMetrics("billing")
>>> health = Health(ttl_s=30)
>>> server = MetricsServer(metrics.registry, health, port=9400).start()
"""

from kep.consumers.metrics.collector import WorkerStateCollector
from kep.consumers.metrics.errors import MetricsError, MetricsServerError
from kep.consumers.metrics.health import Health
from kep.consumers.metrics.names import METRIC_NAMES, REBALANCE_KINDS
from kep.consumers.metrics.probe_cache import ProbeCache
from kep.consumers.metrics.server import MetricsServer, RouteHandler
from kep.consumers.metrics.state import (
    NO_COMMIT_POSITION,
    PartitionState,
    Probe,
    ProbeResult,
    WorkerStateSource,
)
from kep.consumers.metrics.worker import WorkerMetrics

__all__ = [
    "METRIC_NAMES",
    "NO_COMMIT_POSITION",
    "REBALANCE_KINDS",
    "Health",
    "MetricsError",
    "MetricsServer",
    "MetricsServerError",
    "PartitionState",
    "Probe",
    "ProbeCache",
    "ProbeResult",
    "RouteHandler",
    "WorkerMetrics",
    "WorkerStateCollector",
    "WorkerStateSource",
]
