"""Which offset of a partition may be committed.

Messages complete out of order (key-ordered workers, retries handed to other topics), but the committed offset
may only move past an offset once every earlier dispatched offset is finished. ``OffsetTracker`` keeps the
dispatched offsets in order and advances over the contiguous finished prefix.
"""

from __future__ import annotations

import threading
from collections import deque


class OffsetTracker:
    """Per-partition bookkeeping. Offsets are added in increasing order (the poll thread), finished in any order
    (lanes, delivery callbacks); every change holds the lock. The counts read without it are approximate for
    an instant, which the in-flight bound tolerates; ``committable`` is read by the poll thread, the only
    writer of ``add`` and ``mark_committed``."""

    __slots__ = ("_lock", "_pending", "_done", "_next", "_committed")

    def __init__(self, committed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._pending: deque[int] = deque()
        self._done: set[int] = set()
        self._next: int | None = committed  # next offset after the contiguous finished prefix
        self._committed: int | None = committed

    def add(self, offset: int) -> None:
        with self._lock:
            self._pending.append(offset)

    def extend(self, offsets: list[int]) -> None:
        """Add a fetched batch's offsets of this partition at once (in increasing order)."""
        with self._lock:
            self._pending.extend(offsets)

    def done(self, offset: int) -> None:
        with self._lock:
            pending = self._pending
            if pending and pending[0] == offset:
                pending.popleft()
                self._next = offset + 1
                done = self._done
                while pending and pending[0] in done:
                    head = pending.popleft()
                    done.discard(head)
                    self._next = head + 1
            elif pending and pending[0] < offset <= pending[-1]:  # pending is sorted: no O(n) membership test
                self._done.add(offset)

    @property
    def in_flight(self) -> int:
        """Dispatched and not finished: what the in-flight bound counts. A finished message waiting behind an
        unfinished one only holds back the commit, not memory."""
        return len(self._pending) - len(self._done)

    @property
    def uncommitted(self) -> int:
        """Dispatched offsets the committed position cannot pass yet (finished or not)."""
        return len(self._pending)

    @property
    def processed(self) -> int | None:
        """Next offset after the contiguous finished prefix (the processed position)."""
        return self._next

    @property
    def committed(self) -> int | None:
        return self._committed

    def committable(self) -> int | None:
        """The offset to commit now, or None when nothing new is finished."""
        nxt = self._next
        if nxt is None or nxt == self._committed:
            return None
        if (
            self._pending and self._pending[0] < nxt
        ):  # pragma: no cover - defensive: never commit past unfinished
            return None
        return nxt

    def forget_committed(self) -> None:
        """The last commit failed: the next ``committable()`` offers the offset again."""
        with self._lock:
            self._committed = None

    def mark_committed(self, offset: int) -> None:
        with self._lock:
            if self._committed is None or offset > self._committed:
                self._committed = offset
