"""The worker: poll loop, lanes, offset tracking, rebalances, shutdown."""

from consumers.runtime.build import build_worker
from consumers.runtime.worker import Worker

__all__ = ["Worker", "build_worker"]
