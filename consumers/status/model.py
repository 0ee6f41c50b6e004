"""What the status store keeps: each event's latest state per consumer group, and each batch's progress."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

import orjson

#: processing: a handler runs it (``attempt``); retrying: waiting on retry tier ``tier`` (due ``due_ms``);
#: handled; dead_lettered (``exception_type``, ``reason``); dropped (dead letters disabled); replayed: a dead
#: letter republished by ``kep dlq replay`` arrived again.
State = Literal["processing", "retrying", "handled", "dead_lettered", "dropped", "replayed"]
FINAL_STATES: frozenset[str] = frozenset({"handled", "dead_lettered", "dropped"})
#: How a member counts in its batch.
MemberState = Literal["handled", "dead_lettered"]


@dataclass(slots=True)
class EventStatus:
    """An event's latest state in one consumer group. ``at_ms``: when it entered it (the newer record wins).

    Not changed once made, but not ``frozen``: one is made per event handled, and a frozen dataclass's
    ``__init__`` (``object.__setattr__`` per field) costs six times a plain one."""

    event_id: str
    group: str
    state: State
    at_ms: int
    topic: str
    attempt: int = 1
    tier: str | None = None
    due_ms: int | None = None
    exception_type: str | None = None
    reason: str | None = None
    batch_id: str | None = None
    #: Set on the records of a copy republished by ``kep dlq replay`` (when it was replayed).
    replayed_at_ms: int | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(self.as_dict())

    @classmethod
    def from_json(cls, data: bytes | str) -> EventStatus:
        return cls(**orjson.loads(data))

    def as_dict(self) -> dict[str, Any]:
        # field by field, not dataclasses.asdict (which deep-copies): one record is written per event handled
        data: dict[str, Any] = {}
        for name in _EVENT_FIELDS:
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data


_EVENT_FIELDS = tuple(f.name for f in fields(EventStatus))


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """A batch in one consumer group: ``total`` members, how many are handled or dead-lettered so far, and
    when (if) its ``BatchCompleted`` was published (``announced_ms``, 0: not yet)."""

    batch_id: str
    group: str
    total: int
    handled: int
    dead_lettered: int
    announced_ms: int
    first_ms: int
    updated_ms: int

    @property
    def pending(self) -> int:
        return max(0, self.total - self.handled - self.dead_lettered)

    @property
    def finished(self) -> bool:
        """Every member reached a final state."""
        return self.pending == 0

    @property
    def state(self) -> str:
        if not self.finished:
            return "running"
        return "completed" if self.dead_lettered == 0 else "completed_with_dead_letters"

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "group": self.group,
            "state": self.state,
            "total": self.total,
            "handled": self.handled,
            "dead_lettered": self.dead_lettered,
            "pending": self.pending,
            "completed_event_published": self.announced_ms > 0,
            "first_ms": self.first_ms,
            "updated_ms": self.updated_ms,
        }
