"""Everything the worker keeps for one assigned partition."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from confluent_kafka import Message

from kep.consumers.runtime.cancel import CancelToken
from kep.consumers.runtime.held import HeldRetries
from kep.consumers.runtime.lanes import Lane
from kep.consumers.runtime.offsets import OffsetTracker

WorkItem = tuple["PartitionState", list[Message]]  # a lane's batch: messages of one partition, in order

# Why a partition is paused; it is resumed when no reason is left.
BACKPRESSURE = "backpressure"
HOLDING = "holding"  # a retry partition holds as many not-yet-due records as it may
STOPPING = "stopping"


@dataclass(eq=False)
class PartitionState:
    """One assigned partition: its offsets, its lanes, its cancellation token and why it is paused.

    ``source_topic`` is the topic the events were first published to: the topic itself for a main topic, the
    retry tier's source topic for a retry topic (``tier`` then names the tier's suffix, e.g. ``10s``, and
    ``held`` keeps its records that are not due yet).

    Threads: the poll thread creates it, owns ``pause_reasons``, ``held`` and the watermarks, and adds offsets
    to ``tracker``; lanes and the producer's delivery callbacks (on the poll thread) finish offsets through the
    settler; ``token`` is cancelled by the poll thread (revoke, loss, shutdown) and read by everyone.
    """

    topic: str
    partition: int
    source_topic: str
    tier: str | None
    lanes: list[Lane[WorkItem]]
    token: CancelToken = field(default_factory=CancelToken)
    held: HeldRetries | None = None
    tracker: OffsetTracker = field(default_factory=OffsetTracker)
    pause_reasons: set[str] = field(default_factory=set)
    log_end: int | None = None  # watermarks of the last fetch response, copied by the poll thread
    log_start: int | None = None
    limited: bool = False  # a rate or concurrency limit may hold its messages: a separate in-flight budget

    @property
    def key(self) -> tuple[str, int]:
        return (self.topic, self.partition)

    @property
    def running(self) -> int:
        """Dispatched to a lane and not finished: what the in-flight bound and the drain wait for (records
        held until they are due are not running)."""
        held = self.held
        return self.tracker.in_flight - (held.waiting if held is not None else 0)

    def lane_for(self, key: bytes | None, offset: int) -> Lane[WorkItem]:
        lanes = self.lanes
        if len(lanes) == 1:
            return lanes[0]
        return lanes[(hash(key) if key is not None else offset) % len(lanes)]

    def cancel(self) -> int:
        """Stop taking work: cancel the token (wakes lanes waiting to run a message again), drop queued and
        held items. Returns how many queued items were dropped. Poll thread only."""
        self.token.cancel()
        if self.held is not None:
            self.held.clear()
        return sum(lane.cancel() for lane in self.lanes)

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(lane.wait_idle(max(0.0, deadline - time.monotonic())) for lane in self.lanes)
