"""Retry records fetched before they are due, held in memory until their due time.

A retry tier's partition is read in order, but its records are not due in order: jitter lengthens each delay
by a random amount, so a record due later may stand before one due sooner. Pausing the partition at the
first record not due yet (and reading it again later) made every record behind it wait for it. Instead the
poll thread keeps the records that are not due in a heap and hands each to its lane at its own due time; their
offsets stay unfinished meanwhile, so the committed offset never passes a record that has not run. The count
held per partition is bounded (the worker pauses a partition that holds too many).

Records that come due a few at a time would each run as a lane batch of their own, with a claim and a
completion in the store for each batch: with 10 % of events failing once, that made a retry cost several times
a first attempt. So the records of a partition that are due are handed on together, once the soonest of them
has been due for the partition's gathering time (``gather_ms``: the worker's ``retry_batch_wait_s``, at most a
quarter of the tier's delay). A record is never handed on before its due time; the gathering time bounds how
much later.

The due time is the record's ``kep-due-time``, bounded by its tier: at most the tier's delay with the largest
jitter, plus a second of clock slack, after the record was written (its timestamp) or after this worker first
saw it, whichever is earlier. A due time in 2286 waits one tier delay, not centuries; an absent or unreadable
one is due now. Pure bookkeeping with the clock passed in: no consumer, no threads.
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import Any, Final

from kep.producers import headers as h

#: Added to a tier's longest wait before a record's due time is cut short: clocks of hosts disagree a little.
CLOCK_SLACK_MS: Final = 1000


def max_wait_ms(delay_s: float, jitter: float) -> int:
    """The longest a record of a tier with ``delay_s`` and ``jitter`` may legitimately wait after it was
    written, plus the clock slack."""
    return math.ceil(delay_s * (1.0 + jitter) * 1000) + CLOCK_SLACK_MS


def gather_ms(delay_s: float, wait_s: float) -> int:
    """How long a due record of a tier with ``delay_s`` waits for others coming due: ``wait_s``, at most a
    quarter of the delay."""
    return max(0, math.floor(min(wait_s, delay_s / 4) * 1000))


class HeldRetries:
    """The not-yet-due records of one retry partition, soonest due first (the poll thread's)."""

    __slots__ = ("max_wait_ms", "gather_ms", "dropped", "_heap", "_seq")

    def __init__(self, max_wait_ms: int, gather_ms: int = 0) -> None:
        self.max_wait_ms = max_wait_ms
        self.gather_ms = gather_ms
        self.dropped = 0  # held, then let go unrun (shutdown): unfinished for good, so never committed
        self._heap: list[tuple[int, int, Any]] = []
        self._seq = itertools.count()  # ties keep fetch order

    def due_ms(self, headers: Any, timestamp_ms: int, now_ms: int) -> int:
        """When a record with these headers and timestamp may run, bounded by the tier."""
        due = h.header_int(headers, h.DUE_TIME)
        if due is None:
            return now_ms
        written = now_ms if timestamp_ms <= 0 else min(timestamp_ms, now_ms)
        return min(due, written + self.max_wait_ms)

    def hold(self, due_ms: int, msg: Any) -> None:
        heapq.heappush(self._heap, (due_ms, next(self._seq), msg))

    def release(self, now_ms: int) -> list[Any]:
        """The held records due at ``now_ms``, soonest due first, once it is ``next_release_ms`` (else none);
        they are no longer held."""
        heap = self._heap
        out: list[Any] = []
        release_at = self.next_release_ms
        if release_at is None or release_at > now_ms:
            return out
        while heap and heap[0][0] <= now_ms:
            out.append(heapq.heappop(heap)[2])
        return out

    @property
    def next_due_ms(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    @property
    def next_release_ms(self) -> int | None:
        """When ``release`` next hands records on: the soonest due time plus the gathering time."""
        return self._heap[0][0] + self.gather_ms if self._heap else None

    def clear(self) -> None:
        """Let every held record go unrun (shutdown, revoke): the next owner reads them again."""
        self.dropped += len(self._heap)
        self._heap.clear()

    @property
    def waiting(self) -> int:
        """Records fetched and not handed to a lane: held now, or let go unrun."""
        return len(self._heap) + self.dropped

    def __len__(self) -> int:
        return len(self._heap)
