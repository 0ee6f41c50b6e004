"""Burrow-style partition and group status over a sliding window of observations. Pure: time is passed in.

The exporter samples each partition of each group at every poll: ``(time, committed, log_end)``. Commits carry
no time on the admin API, so "a commit happened" can only be seen as "the committed offset changed between two
samples". Definitions, for one partition, evaluated at ``now`` with a window of ``W`` seconds:

* the *span* is the readable samples from the *anchor* (the newest readable sample taken at or before
  ``now - W``) to the newest one; the window is *complete* when an anchor exists;
* ``lag`` of a sample is the lag the probe measured (records left, markers and aborted records not counted)
  or, without one, ``log_end - committed`` (``log_end - log_start`` with no commit), never below 0.

Rules, first match wins:

1. ``ERR``: no sample, or the newest sample could not be read (log end or committed offset unknown).
2. ``OK``: the newest lag is 0 (caught up), or the first record waiting in the newest sample is a retry that is
   not due yet (a retry tier holds its records until their ``kep-due-time`` on purpose: nothing is late, however
   long the offset stays), or the window is not complete yet (too little history to judge).
3. ``STOP``: the committed offset is the same in every sample of the span, the lag is above 0 in every
   sample of the span, and the group has no active member (``consumers_active is False``: the broker
   reports the group Empty or Dead). Nobody is consuming and work is waiting.
4. ``STALL``: as ``STOP`` but the group has members, or their presence is unknown: someone holds the
   partitions and has not moved the offset for a whole window while work was waiting.
5. ``WARN``: the committed offset advanced over the span, and the lag never shrank from one sample to the
   next and is larger at the end than at the anchor: the consumer works but falls behind.
6. ``OK`` otherwise (including a committed offset that moved backwards, a reset).

A group's status is its worst partition's, in the order ``OK < WARN < STALL < STOP < ERR``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Collection, Hashable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from kep.consumers.lag.errors import LagError

K = TypeVar("K", bound=Hashable)


class Status(StrEnum):
    """A partition's or group's health; the declaration order is the severity order."""

    OK = "OK"
    WARN = "WARN"
    STALL = "STALL"
    STOP = "STOP"
    ERR = "ERR"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


STATUSES: tuple[Status, ...] = tuple(Status)
_SEVERITY = {status: rank for rank, status in enumerate(STATUSES)}


def worst(statuses: Iterable[Status]) -> Status:
    """The most severe of ``statuses``; ``OK`` for none."""
    return max(statuses, key=_SEVERITY.__getitem__, default=Status.OK)


@dataclass(frozen=True, slots=True)
class Sample:
    """One observation of a partition at ``at`` (seconds on the evaluator's clock).

    ``committed`` is ``None`` when the group has no committed offset; it then resumes from ``log_start``.
    ``log_end`` is ``None`` when the partition could not be read. ``measured`` is the lag the probe measured,
    when it did. ``not_due``: the first record waiting is a retry whose due time has not come
    (``consumers.lag.due``).
    """

    at: float
    committed: int | None
    log_end: int | None
    log_start: int = 0
    measured: int | None = None
    not_due: bool = False

    @property
    def readable(self) -> bool:
        return self.log_end is not None

    @property
    def lag(self) -> int | None:
        """``measured``, else ``log_end - committed`` (or ``- log_start`` with no commit), at least 0;
        ``None`` if unreadable."""
        if self.log_end is None:
            return None
        if self.measured is not None:
            return max(0, self.measured)
        base = self.committed if self.committed is not None else self.log_start
        return max(0, self.log_end - base)


def _span(samples: Sequence[Sample], now: float, window_s: float) -> list[Sample] | None:
    """The readable samples from the anchor on, or ``None`` when the window is not complete."""
    readable = [s for s in samples if s.readable]
    start = now - window_s
    anchor = None
    for index, sample in enumerate(readable):
        if sample.at <= start:
            anchor = index
    return None if anchor is None else readable[anchor:]


def _falling_behind(span: Sequence[Sample]) -> bool:
    lags = [s.lag or 0 for s in span]
    if any(later < earlier for earlier, later in zip(lags, lags[1:], strict=False)):
        return False
    first, last = span[0], span[-1]
    advanced = (last.committed if last.committed is not None else -1) > (
        first.committed if first.committed is not None else -1
    )
    return advanced and lags[-1] > lags[0]


def evaluate(
    samples: Sequence[Sample], *, now: float, window_s: float, consumers_active: bool | None = None
) -> Status:
    """The status of one partition from its samples (oldest first); see the module docstring for the rules."""
    if not samples or not samples[-1].readable:
        return Status.ERR
    newest = samples[-1]
    if newest.lag == 0 or newest.not_due:
        return Status.OK
    span = _span(samples, now, window_s)
    if span is None:
        return Status.OK
    unchanged = all(s.committed == span[0].committed for s in span)
    if unchanged and all((s.lag or 0) > 0 for s in span):
        return Status.STOP if consumers_active is False else Status.STALL
    if _falling_behind(span):
        return Status.WARN
    return Status.OK


class PartitionWindow:
    """The samples of one partition within the window, plus the anchor just before it."""

    def __init__(self, window_s: float) -> None:
        if window_s <= 0:
            raise LagError(f"status window must be > 0 seconds, got {window_s}")
        self.window_s = window_s
        self._samples: deque[Sample] = deque()

    def add(self, sample: Sample) -> None:
        """Append ``sample`` (samples arrive in time order) and drop those no rule can look at any more."""
        if self._samples and sample.at < self._samples[-1].at:
            raise LagError(f"samples must arrive in time order: {sample.at} after {self._samples[-1].at}")
        self._samples.append(sample)
        start = sample.at - self.window_s
        # Keep the newest readable sample at or before the window start (the anchor); drop older ones.
        anchor = 0
        for index, kept in enumerate(self._samples):
            if kept.at > start:
                break
            if kept.readable:
                anchor = index
        for _ in range(anchor):
            self._samples.popleft()

    @property
    def samples(self) -> tuple[Sample, ...]:
        return tuple(self._samples)

    def status(self, now: float, *, consumers_active: bool | None = None) -> Status:
        return evaluate(self._samples, now=now, window_s=self.window_s, consumers_active=consumers_active)


class StatusTracker(Generic[K]):
    """Windows keyed by partition (any hashable key, e.g. ``(group, topic, partition)``) on an injected clock.

    >>> tracker = StatusTracker[tuple[str, int]](window_s=120, clock=lambda: 0.0)
    >>> tracker.observe(("orders", 0), committed=5, log_end=5)
    >>> tracker.status(("orders", 0))
    <Status.OK: 'OK'>
    """

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if window_s <= 0:
            raise LagError(f"status window must be > 0 seconds, got {window_s}")
        self.window_s = window_s
        self._clock = clock
        self._windows: dict[K, PartitionWindow] = {}

    def observe(
        self,
        key: K,
        *,
        committed: int | None,
        log_end: int | None,
        log_start: int = 0,
        lag: int | None = None,
        not_due: bool = False,
    ) -> None:
        """Record a sample of ``key`` now; ``log_end=None`` records a failed read; ``lag``: as measured;
        ``not_due``: the first record waiting is a retry not due yet."""
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = PartitionWindow(self.window_s)
        window.add(Sample(self._clock(), committed, log_end, log_start, lag, not_due))

    def status(self, key: K, *, consumers_active: bool | None = None) -> Status:
        window = self._windows.get(key)
        if window is None:
            return Status.ERR
        return window.status(self._clock(), consumers_active=consumers_active)

    def samples(self, key: K) -> tuple[Sample, ...]:
        window = self._windows.get(key)
        return window.samples if window is not None else ()

    def keys(self) -> list[K]:
        return list(self._windows)

    def retain(self, keys: Collection[K]) -> None:
        """Forget every key not in ``keys`` (groups and partitions that disappeared)."""
        keep = set(keys)
        for key in [k for k in self._windows if k not in keep]:
            del self._windows[key]

    def __len__(self) -> int:
        return len(self._windows)
