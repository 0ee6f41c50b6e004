"""Everything the worker keeps for one assigned partition."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from confluent_kafka import Message

from kep.consumers.runtime.lanes import Lane
from kep.consumers.runtime.offsets import OffsetTracker

WorkItem = tuple["PartitionState", list[Message]]  # a lane's batch: messages of one partition, in order

# Why a partition is paused; it is resumed when no reason is left.
BACKPRESSURE = "backpressure"
DELAY = "delay"
STOPPING = "stopping"


@dataclass(eq=False)
class PartitionState:
    """One assigned partition: its offsets, its lanes, and why it is paused.

    ``source_topic`` is the topic the events were first published to: the topic itself for a main topic, the
    retry tier's source topic for a retry topic (``tier`` then names the tier's suffix, e.g. ``10s``).
    """

    topic: str
    partition: int
    source_topic: str
    tier: str | None
    lanes: list[Lane[WorkItem]]
    tracker: OffsetTracker = field(default_factory=OffsetTracker)
    cancelled: threading.Event = field(default_factory=threading.Event)
    pause_reasons: set[str] = field(default_factory=set)
    resume_at: float | None = None
    stopped: bool = False  # mirrors ``cancelled`` for the per-message check
    log_end: int | None = None  # watermarks of the last fetch response, copied by the poll thread
    log_start: int | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.topic, self.partition)

    def done(self, offset: int) -> None:
        """The message at ``offset`` is finished: handled, skipped, or durably handed to another topic."""
        self.tracker.done(offset)

    def lane_for(self, key: bytes | None, offset: int) -> Lane[WorkItem]:
        lanes = self.lanes
        if len(lanes) == 1:
            return lanes[0]
        return lanes[(hash(key) if key is not None else offset) % len(lanes)]

    def cancel(self) -> int:
        """Stop taking work: drop queued items, wake handlers waiting to retry. Returns how many were dropped."""
        self.stopped = True
        self.cancelled.set()
        return sum(lane.cancel() for lane in self.lanes)

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(lane.wait_idle(max(0.0, deadline - time.monotonic())) for lane in self.lanes)
