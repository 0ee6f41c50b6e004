"""What the worker tells its metrics at scrape time (partitions, in-flight count), and the probe's shape.

The runtime implements ``WorkerStateSource``; ``WorkerMetrics.bind`` hands it to the scrape-time collector.
A probe (``consumers.lag.probe.LagProbe.probe``) answers the true log end and the timestamp of the first
unprocessed record for given positions; the collector only depends on the shape below, never on the module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

TopicPartitionKey = tuple[str, int]
NO_COMMIT_POSITION = -1001
"""The position asked of a probe for a partition without a committed offset: read from the log start."""


@dataclass(frozen=True, slots=True)
class PartitionState:
    """One assigned partition as the worker sees it.

    ``committed``: the offset the group resumes from (last commit); ``None`` when the group has no commit yet.
    ``processed``: the next offset after the contiguous prefix of finished messages; ``None`` before any.
    ``log_end``: the high watermark last seen in a fetch response (stale while the partition is paused).
    ``log_start``: the first offset still in the log, when the worker knows it (``None``: taken as 0).
    """

    topic: str
    partition: int
    committed: int | None
    processed: int | None
    log_end: int | None
    paused: bool
    log_start: int | None = None


@runtime_checkable
class WorkerStateSource(Protocol):
    """Scrape-time view of a worker. Both methods are called off the poll thread: they must be thread-safe
    and cheap, answering from state the poll loop keeps. Do not call the ``Consumer`` here: its methods (even
    ``get_watermark_offsets(cached=True)``) wait for the poll loop's ``consume()`` to return."""

    def partition_states(self) -> Sequence[PartitionState]: ...

    def in_flight(self) -> int: ...


class ProbeResult(Protocol):
    """The answer for one partition: the true log end, and the timestamp (ms since the epoch) of the record at
    the probed position, ``None`` when the position is at the log end (caught up). An answer may also carry
    ``position`` (where the probe read from: the log start when asked for ``NO_COMMIT_POSITION`` or below it),
    ``lag_messages`` (the records left from there, markers and aborted records not counted) and
    ``below_log_start``."""

    @property
    def log_end(self) -> int: ...

    @property
    def next_timestamp_ms(self) -> int | None: ...


Probe = Callable[[Mapping[TopicPartitionKey, int]], Mapping[TopicPartitionKey, ProbeResult]]
"""``probe({(topic, partition): position}) -> {(topic, partition): ProbeResult}``; partitions it could not
answer are absent from the result. A position below 0 means "no commit": read from the log start."""
