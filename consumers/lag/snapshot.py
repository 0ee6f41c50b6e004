"""What one lag poll saw: groups, their partitions, lag in messages and seconds, status. Immutable values.

Definitions (see ``docs/lag.md``):

* ``committed``: the group's committed offset, the next record it will process; ``None`` when it has none.
* ``position``: where the group resumes: ``committed``, or the log start when there is no commit or the
  commit is below the log start (``below_log_start``: retention deleted records the group never processed).
* ``log_end``: the log end at the group's isolation level (``LagProbe``); ``None`` when it could not be read.
* ``lag_messages``: the records left from ``position`` to ``log_end`` (transaction markers, aborted records
  under ``read_committed`` and compacted-away offsets not counted; see ``LagProbe``).
* ``lag_seconds``: age of the next record to process when the poll ran; 0 when caught up or empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from kep.consumers.lag.status import Status, worst


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """Lag of one group on one partition. Fields are ``None`` where the poll could not read them."""

    topic: str
    partition: int
    committed: int | None
    position: int | None
    log_end: int | None
    lag_messages: int | None
    lag_seconds: float | None
    status: Status = Status.OK
    log_start: int | None = None
    below_log_start: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "committed": self.committed,
            "log_start": self.log_start,
            "log_end": self.log_end,
            "lag_messages": self.lag_messages,
            "lag_seconds": None if self.lag_seconds is None else round(self.lag_seconds, 3),
            "below_log_start": self.below_log_start,
            "status": self.status.value,
        }


@dataclass(frozen=True, slots=True)
class GroupLag:
    """One consumer group: its state as the broker reports it, its partitions and its status (the worst).

    ``members`` is ``None`` when the group could not be described; the embedded broker always lists 0.
    ``error`` says why the group is ``ERR`` as a whole (its offsets could not be read).
    """

    group: str
    state: str
    members: int | None
    partitions: tuple[PartitionLag, ...] = ()
    error: str | None = None
    status: Status = field(default=Status.OK)

    @property
    def lag_messages(self) -> int:
        """Sum of the readable partitions' lag."""
        return sum(p.lag_messages or 0 for p in self.partitions)

    @property
    def max_lag_seconds(self) -> float:
        return max((p.lag_seconds or 0.0 for p in self.partitions), default=0.0)

    def topic_lag(self) -> dict[str, int]:
        """Sum of lag per topic."""
        totals: dict[str, int] = {}
        for p in self.partitions:
            totals[p.topic] = totals.get(p.topic, 0) + (p.lag_messages or 0)
        return totals

    def with_statuses(self, statuses: dict[tuple[str, int], Status]) -> GroupLag:
        """A copy with partition statuses from ``statuses`` (kept where absent); the group's is the worst."""
        parts = tuple(
            replace(p, status=statuses.get((p.topic, p.partition), p.status)) for p in self.partitions
        )
        own = [Status.ERR] if self.error is not None else []
        return replace(self, partitions=parts, status=worst([*own, *(p.status for p in parts)]))

    def summary(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "status": self.status.value,
            "state": self.state,
            "members": self.members,
            "topics": sorted({p.topic for p in self.partitions}),
            "partitions": len(self.partitions),
            "lag_messages": self.lag_messages,
            "max_lag_seconds": round(self.max_lag_seconds, 3),
            "error": self.error,
        }

    def as_dict(self) -> dict[str, Any]:
        return {**self.summary(), "partitions": [p.as_dict() for p in self.partitions]}


@dataclass(frozen=True, slots=True)
class LagSnapshot:
    """The result of one poll: ``taken_at`` (unix seconds), how long it took, the groups it found."""

    taken_at: float
    duration_s: float
    groups: tuple[GroupLag, ...]
    error: str | None = None

    def group(self, name: str) -> GroupLag | None:
        return next((g for g in self.groups if g.group == name), None)

    def failed(self, error: str, *, taken_at: float, duration_s: float) -> LagSnapshot:
        """This snapshot's groups all marked ``ERR`` with ``error``: what a poll that failed reports."""
        groups = tuple(
            replace(
                g,
                error=error,
                status=Status.ERR,
                partitions=tuple(replace(p, status=Status.ERR) for p in g.partitions),
            )
            for g in self.groups
        )
        return LagSnapshot(taken_at, duration_s, groups, error)

    def as_dict(self) -> dict[str, Any]:
        return {
            "taken_at": self.taken_at,
            "duration_s": round(self.duration_s, 3),
            "error": self.error,
            "groups": [g.as_dict() for g in self.groups],
        }
