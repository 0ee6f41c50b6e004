"""When a schedule fires, pure: the next firing after an instant, the firings due now, and each firing's id.

Every instant here is an aware UTC ``datetime``; the cron expression is read in the schedule's time zone by
``cronsim``, which follows Debian's cron across daylight-saving changes:

* a 5-field expression with a fixed minute and hour (``30 2 * * *``) is read on the local wall clock: a local
  time that a spring-forward skips fires at the first local time after the gap (02:30 -> 03:00), once; a local
  time that a fall-back repeats fires once, at its first occurrence;
* any other expression (``*/15 * * * *``, ``0 * * * *``, 6 fields with seconds) follows real time: each
  instant whose local time matches fires, so an hourly schedule fires in both passes of a repeated hour and
  not at all in a skipped one (that hour has no local times).

A firing's id is ``uuid5`` of the schedule's name and the firing's UTC instant: every replica, and a scheduler
restarted after a crash, gives one firing the same id, and consumers deduplicate on it.
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from kep.topology.model import ScheduleSpec

__all__ = ["FIRING_NAMESPACE", "Due", "due_firings", "firing_id", "next_firing", "trigger_id"]

#: The namespace of firing ids (uuid5 of ``"{schedule}@{UTC instant, ms}"``).
FIRING_NAMESPACE = uuid.UUID("6b6a1c1e-4f0b-5d3c-9a57-2f1f3c8e5a10")
#: At most this many firings are looked at to count those skipped (a one-second schedule down for a week).
COUNT_LIMIT = 10_000
_FIRST_WINDOW = timedelta(hours=1)


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError(f"{at!r} has no time zone; firings are aware UTC instants")
    return at.astimezone(UTC)


def firing_id(schedule: str, at: datetime) -> str:
    """The id of ``schedule``'s firing at ``at``: the same in every replica and after every restart."""
    instant = _utc(at).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return str(uuid.uuid5(FIRING_NAMESPACE, f"{schedule}@{instant}"))


def trigger_id() -> str:
    """A manual firing's own id (``kep schedules trigger``): new each time, never a scheduled firing's."""
    return str(uuid.uuid4())


def next_firing(spec: ScheduleSpec, after: datetime) -> datetime | None:
    """The first firing strictly after ``after`` (UTC), or None when the expression has none in 50 years."""
    from cronsim import CronSim

    after = _utc(after)
    iterator = CronSim(spec.cron, after.astimezone(spec.zone))
    for candidate in iterator:
        at = candidate.astimezone(UTC)
        if at > after:  # a DST fix-up may land on or before the start; step on
            return at
    return None  # pragma: no cover - cronsim raises StopIteration, ending the loop


@dataclass(frozen=True)
class Due:
    """What to do now: ``fire`` these firings, oldest first; ``skipped`` missed ones were dropped (at least
    that many when ``skipped_more``)."""

    fire: tuple[datetime, ...] = ()
    skipped: int = 0
    skipped_more: bool = False


def _between(spec: ScheduleSpec, after: datetime, until: datetime, limit: int) -> tuple[list[datetime], bool]:
    """Firings in ``(after, until]``, at most ``limit`` of them (the first ones) and whether more exist."""
    found: list[datetime] = []
    at = after
    while True:
        upcoming = next_firing(spec, at)
        if upcoming is None or upcoming > until:
            return found, False
        if len(found) == limit:
            return found, True
        found.append(upcoming)
        at = upcoming


def _latest(spec: ScheduleSpec, after: datetime, now: datetime, limit: int) -> tuple[list[datetime], bool]:
    """The latest ``limit`` firings in ``(after, now]`` and whether older ones exist: searched in windows ending
    at ``now`` that double until they hold more than ``limit`` firings or reach ``after``, so a long downtime
    costs the firings of one window, not of the whole gap."""
    window = _FIRST_WINDOW
    while True:
        start = max(after, now - window)
        kept: deque[datetime] = deque(maxlen=limit + 1)
        at = start
        while (upcoming := next_firing(spec, at)) is not None and upcoming <= now:
            kept.append(upcoming)
            at = upcoming
        if len(kept) > limit:
            return list(kept)[1:], True
        if start == after:
            return list(kept), False
        window *= 2


def due_firings(spec: ScheduleSpec, after: datetime, now: datetime) -> Due:
    """The firings of ``spec`` due at ``now`` when the last one handled was at ``after`` (UTC).

    ``missed: catch_up``: every firing in ``(after, now]``, the latest ``catch_up_limit`` of them when more
    were missed (the older ones are skipped). ``missed: skip``: those at most ``grace`` late; the others are
    skipped, and the schedule goes on with its next firing.
    """
    after, now = _utc(after), _utc(now)
    if now <= after:
        return Due()
    if spec.missed == "catch_up":
        fire, older = _latest(spec, after, now, spec.catch_up_limit)
        if not older:
            return Due(tuple(fire))
        missed, more = _between(spec, after, fire[0] - timedelta(milliseconds=1), COUNT_LIMIT)
        return Due(tuple(fire), len(missed), more)
    cutoff = now - timedelta(seconds=spec.grace)
    if cutoff <= after:
        fire, _ = _between(spec, after, now, COUNT_LIMIT)
        return Due(tuple(fire))
    missed, more = _between(spec, after, cutoff, COUNT_LIMIT)
    fire, _ = _between(spec, cutoff, now, COUNT_LIMIT)
    return Due(tuple(fire), len(missed), more)
