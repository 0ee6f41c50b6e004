"""Consumer lag you can trust: records left (not offsets), lag in seconds, Burrow-style status, the exporter.

>>> with LagProbe(KafkaSettings()) as probe:
...     probe.probe({("orders", 0): probe.committed_offsets("billing")[("orders", 0)]})
>>> with LagExporter(KafkaSettings(), poll_interval_s=10, window_s=120) as exporter:
...     exporter.serve(port=9401)
...     exporter.start()
"""

from kep.consumers.lag.collector import LAG_METRIC_NAMES, LagCollector, PollState
from kep.consumers.lag.errors import LagError, LagReadError
from kep.consumers.lag.exporter import ExporterHealth, LagExporter
from kep.consumers.lag.monitor import LagMonitor
from kep.consumers.lag.probe import NO_OFFSET, LagProbe, PartitionProbe
from kep.consumers.lag.snapshot import GroupLag, LagSnapshot, PartitionLag
from kep.consumers.lag.status import STATUSES, PartitionWindow, Sample, Status, StatusTracker, evaluate, worst

__all__ = [
    "LAG_METRIC_NAMES",
    "NO_OFFSET",
    "STATUSES",
    "ExporterHealth",
    "GroupLag",
    "LagCollector",
    "LagError",
    "LagExporter",
    "LagMonitor",
    "LagProbe",
    "LagReadError",
    "LagSnapshot",
    "PartitionLag",
    "PartitionProbe",
    "PartitionWindow",
    "PollState",
    "Sample",
    "Status",
    "StatusTracker",
    "evaluate",
    "worst",
]
