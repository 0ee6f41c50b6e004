"""Delayed events: the forwarder that moves records through the delay tiers to their destination when due.

>>> forwarder = DelayForwarder(load_topology("topology.yaml"), KafkaSettings())  # doctest: +SKIP
>>> forwarder.start()  # or forwarder.run() on this thread; forwarder.stop() to finish  # doctest: +SKIP
"""

from kep.consumers.delays.decide import (
    Deliver,
    Hold,
    Reject,
    Retier,
    Scheduled,
    leave_ms,
    next_step,
    schedule,
)
from kep.consumers.delays.forwarder import DelayForwarder
from kep.consumers.delays.metrics import DelayMetrics

__all__ = [
    "DelayForwarder",
    "DelayMetrics",
    "Deliver",
    "Hold",
    "Reject",
    "Retier",
    "Scheduled",
    "leave_ms",
    "next_step",
    "schedule",
]
