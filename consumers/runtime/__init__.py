"""The worker: poll loop, lanes, offset tracking, rebalances, shutdown."""

from kep.consumers.runtime.build import build_worker
from kep.consumers.runtime.worker import Worker

__all__ = ["Worker", "build_worker"]
