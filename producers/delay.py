"""When a delayed event is due, and where it waits until then (pure: the clock is an argument).

``due_time_ms`` turns ``deliver_at`` / ``delay`` into a due time in milliseconds since the epoch (``None``: not
delayed, publish at once); ``delay_route`` picks the delay-tier topic and the headers naming the destination and
the due time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from kep.producers import headers as h
from kep.producers.errors import InvalidDelayError
from kep.topology._delays import DelaySpec
from kep.topology.durations import format_duration

__all__ = ["DelayArg", "DelayRoute", "delay_route", "due_time_ms"]

#: A delay: a ``timedelta`` or seconds.
DelayArg = timedelta | float | int


def due_time_ms(deliver_at: datetime | None, delay: DelayArg | None, now_ms: int) -> int | None:
    """The due time of an event published at ``now_ms``, or ``None`` when it is not delayed (neither given, or
    due now or in the past). ``InvalidDelayError`` for both given, a naive ``deliver_at``, a delay that is
    negative or not a finite number."""
    if deliver_at is not None and delay is not None:
        raise InvalidDelayError("pass deliver_at or delay, not both")
    if deliver_at is not None:
        if not isinstance(deliver_at, datetime):
            raise InvalidDelayError(f"deliver_at must be a datetime, got {type(deliver_at).__name__}")
        if deliver_at.tzinfo is None or deliver_at.utcoffset() is None:
            raise InvalidDelayError(
                f"deliver_at {deliver_at.isoformat()} has no time zone; pass an aware datetime (e.g. UTC)"
            )
        due = math.ceil(deliver_at.timestamp() * 1000)
    elif delay is not None:
        seconds = _seconds(delay)
        due = now_ms + math.ceil(seconds * 1000)
    else:
        return None
    return due if due > now_ms else None


def _seconds(delay: DelayArg) -> float:
    if isinstance(delay, bool):
        raise InvalidDelayError(f"delay {delay!r} is not a duration")
    if isinstance(delay, timedelta):
        seconds = delay.total_seconds()
    elif isinstance(delay, int | float):
        seconds = float(delay)
    else:
        raise InvalidDelayError(f"delay must be a timedelta or seconds, got {type(delay).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidDelayError(f"delay {delay!r} is not a non-negative number of seconds")
    return seconds


@dataclass(frozen=True, slots=True)
class DelayRoute:
    """Where a delayed record goes now: the tier topic, and the headers to add to its own."""

    topic: str
    headers: tuple[tuple[str, bytes], tuple[str, bytes]]


def delay_route(delays: DelaySpec | None, destination: str, due_ms: int, now_ms: int) -> DelayRoute:
    """The tier for a record due on ``destination`` at ``due_ms``. ``InvalidDelayError`` without a ``delays:``
    section or past its ``max_delay``."""
    if delays is None:
        raise InvalidDelayError(
            "the topology has no delays: section, so there is nowhere to keep delayed events "
            "(see docs/delayed-events.md)"
        )
    remaining_s = (due_ms - now_ms) / 1000
    if remaining_s > delays.max_delay:
        raise InvalidDelayError(
            f"a delay of {remaining_s:.0f}s is more than delays.max_delay ({format_duration(delays.max_delay)})"
        )
    tier = delays.tier_for(remaining_s)
    return DelayRoute(
        tier.topic, ((h.DELAY_TOPIC, destination.encode("ascii")), (h.DELAY_DUE, h.encode_int(due_ms)))
    )
