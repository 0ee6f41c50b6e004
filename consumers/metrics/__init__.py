"""Worker metrics: counters and histograms on the hot path, scrape-time lag, health, and the HTTP server.

>>> metrics = WorkerMetrics("billing")
>>> health = Health(ttl_s=30)
>>> server = MetricsServer(metrics.registry, health, port=9400).start()
"""

from consumers.metrics.collector import WorkerStateCollector
from consumers.metrics.errors import MetricsError, MetricsServerError
from consumers.metrics.health import Health
from consumers.metrics.names import METRIC_NAMES, REBALANCE_KINDS
from consumers.metrics.probe_cache import ProbeCache
from consumers.metrics.server import MetricsServer, RouteHandler
from consumers.metrics.state import NO_COMMIT_POSITION, PartitionState, Probe, ProbeResult, WorkerStateSource
from consumers.metrics.worker import WorkerMetrics

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
