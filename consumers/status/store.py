"""The status store interface, and the in-process implementation (tests; not shared, not durable).

Stores live beside the idempotency keys (same URL: ``sqlite:///``, ``redis://``, ``postgresql://``,
``memory://``) in tables or keys of their own, and keep everything for ``ttl_s`` after its last change.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence

from kep.consumers.status.model import BatchProgress, EventStatus, MemberState


class StatusStore(ABC):
    """Event states per (event id, group); batch progress per (batch id, group)."""

    def __init__(self, *, ttl_s: float) -> None:
        self.ttl_s = ttl_s

    @abstractmethod
    def put_events(self, records: Sequence[EventStatus]) -> None:
        """Record each state, unless the store has a newer one (``at_ms``) for the same event and group."""

    @abstractmethod
    def events(self, event_id: str) -> list[EventStatus]:
        """The event's state in every group that recorded one."""

    @abstractmethod
    def record_member(
        self, group: str, batch_id: str, total: int, event_id: str, state: MemberState, now_ms: int
    ) -> BatchProgress:
        """Count ``event_id`` as ``state`` in its batch (again: no change; another final state: moved), atomically
        with the batch's counters; the progress after."""

    @abstractmethod
    def batches(self, batch_id: str) -> list[BatchProgress]:
        """The batch's progress in every group that saw a member."""

    @abstractmethod
    def dead_members(self, group: str, batch_id: str) -> list[str]:
        """Ids of the batch's members that are dead-lettered in ``group``."""

    @abstractmethod
    def mark_announced(self, group: str, batch_id: str, now_ms: int) -> None:
        """The batch's ``BatchCompleted`` was published."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


def counts_after(old: str | None, new: MemberState) -> tuple[int, int]:
    """(handled delta, dead-lettered delta) when a member moves from ``old`` to ``new``."""
    if old == new:
        return 0, 0
    handled = (new == "handled") - (old == "handled")
    dead = (new == "dead_lettered") - (old == "dead_lettered")
    return int(handled), int(dead)


class MemoryStatusStore(StatusStore):
    """Not shared between processes and without expiry: for tests and single-process use. Bounded like the
    memory idempotency store: past ``max_events`` event states, the oldest tenth is forgotten."""

    def __init__(self, *, ttl_s: float, max_events: int = 1_000_000) -> None:
        super().__init__(ttl_s=ttl_s)
        self._lock = threading.Lock()
        self._max_events = max_events
        self._events: dict[tuple[str, str], EventStatus] = {}  # oldest first
        self._batches: dict[tuple[str, str], BatchProgress] = {}
        self._members: dict[tuple[str, str], dict[str, str]] = {}

    def put_events(self, records: Sequence[EventStatus]) -> None:
        with self._lock:
            for record in records:
                key = (record.event_id, record.group)
                known = self._events.get(key)
                if known is None or record.at_ms >= known.at_ms:
                    self._events[key] = record
            excess = len(self._events) - self._max_events
            if excess > 0:
                for key in list(self._events)[: max(excess, self._max_events // 10)]:
                    del self._events[key]

    def events(self, event_id: str) -> list[EventStatus]:
        with self._lock:
            return [r for (e, _), r in self._events.items() if e == event_id]

    def record_member(
        self, group: str, batch_id: str, total: int, event_id: str, state: MemberState, now_ms: int
    ) -> BatchProgress:
        key = (batch_id, group)
        with self._lock:
            members = self._members.setdefault(key, {})
            progress = self._batches.get(key) or BatchProgress(
                batch_id, group, total, 0, 0, 0, now_ms, now_ms
            )
            handled, dead = counts_after(members.get(event_id), state)
            members[event_id] = state
            progress = BatchProgress(
                batch_id, group, progress.total, progress.handled + handled, progress.dead_lettered + dead,
                progress.announced_ms, progress.first_ms, now_ms,
            )  # fmt: skip
            self._batches[key] = progress
            return progress

    def batches(self, batch_id: str) -> list[BatchProgress]:
        with self._lock:
            return [p for (b, _), p in self._batches.items() if b == batch_id]

    def dead_members(self, group: str, batch_id: str) -> list[str]:
        with self._lock:
            members = self._members.get((batch_id, group), {})
            return sorted(e for e, s in members.items() if s == "dead_lettered")

    def mark_announced(self, group: str, batch_id: str, now_ms: int) -> None:
        with self._lock:
            progress = self._batches.get((batch_id, group))
            if progress is not None:
                self._batches[(batch_id, group)] = BatchProgress(
                    batch_id, group, progress.total, progress.handled, progress.dead_lettered, now_ms,
                    progress.first_ms, progress.updated_ms,
                )  # fmt: skip
