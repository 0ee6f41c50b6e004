"""A delayed intake request: ``?delay=10m`` or ``?deliver_at=2030-01-01T09:00:00Z`` on ``POST /events/{type}``.

The event is handled no earlier than then (``docs/delayed-events.md``); the answer's ``topic`` is the delay
tier it waits in. ``ValueError`` names a bad parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kep.topology.durations import parse_duration
from kep.topology.errors import DurationError

__all__ = ["DELAY_PARAMETERS", "delay_of"]

_MAX_SHOWN = 64

#: The OpenAPI description of the two query parameters.
DELAY_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "delay",
        "in": "query",
        "required": False,
        "description": "Handle the event no earlier than this long from now: a number with a unit (ms, s, m, "
        "h, d), e.g. 10m. Needs the topology's delays: section; not with deliver_at.",
        "schema": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?(ms|s|m|h|d)$", "example": "10m"},
    },
    {
        "name": "deliver_at",
        "in": "query",
        "required": False,
        "description": "Handle the event no earlier than this time (ISO 8601 with a time zone). Now or past: "
        "published at once. Not with delay.",
        "schema": {"type": "string", "format": "date-time", "example": "2030-01-01T09:00:00Z"},
    },
]


def _shown(value: str) -> str:
    return repr(value[:_MAX_SHOWN]) + ("..." if len(value) > _MAX_SHOWN else "")


def delay_of(query: Mapping[str, str]) -> tuple[datetime | None, float | None]:
    """``(deliver_at, delay seconds)`` from the query parameters; both ``None`` when the request is not delayed."""
    delay, deliver_at = query.get("delay"), query.get("deliver_at")
    if delay is not None and deliver_at is not None:
        raise ValueError("pass delay or deliver_at, not both")
    if delay is not None:
        try:
            return None, parse_duration(delay)
        except DurationError:
            raise ValueError(
                f"delay {_shown(delay)} is not a number with a unit (ms, s, m, h, d), e.g. 10m"
            ) from None
    if deliver_at is not None:
        try:
            at = datetime.fromisoformat(deliver_at)
        except ValueError:
            raise ValueError(f"deliver_at {_shown(deliver_at)} is not an ISO 8601 time") from None
        if at.tzinfo is None:
            raise ValueError(f"deliver_at {_shown(deliver_at)} has no time zone (add Z or +02:00)")
        return at, None
    return None, None
