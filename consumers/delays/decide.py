"""What the delay forwarder does with a delay-tier record, as values (pure: the clock is an argument).

A record in tier ``T`` waits there exactly ``T`` from when it was written (its timestamp, or when the forwarder
first saw it if that is earlier: a producer clock ahead of ours cannot hold a partition longer), and never past
its due time. Records of one tier thus leave in offset order. On leaving, the rest of its delay decides:

* due now or past: ``Deliver`` to the destination;
* less than the smallest tier left: ``Hold`` in memory until due, then deliver;
* otherwise: ``Retier`` into the largest tier not longer than what is left.

A record whose headers cannot be trusted is a ``Reject``: it goes to the forwarder's dead-letter topic at once.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from kep.producers import headers as h
from kep.topology import DelaySpec

__all__ = [
    "Deliver",
    "Hold",
    "Reject",
    "Retier",
    "Scheduled",
    "forward_headers",
    "leave_ms",
    "next_step",
    "schedule",
]

_DELAY_HEADERS = frozenset({h.DELAY_TOPIC, h.DELAY_DUE})
_MAX_SHOWN = 80


@dataclass(frozen=True, slots=True)
class Scheduled:
    """A well-formed delayed record: where and when it is due."""

    destination: str
    due_ms: int


@dataclass(frozen=True, slots=True)
class Reject:
    """A record the forwarder cannot schedule, and why (safe to log: untrusted text is escaped and cut)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Deliver:
    destination: str


@dataclass(frozen=True, slots=True)
class Hold:
    until_ms: int


@dataclass(frozen=True, slots=True)
class Retier:
    topic: str


def _shown(raw: bytes) -> str:
    text = repr(raw[:_MAX_SHOWN])
    return text + ("..." if len(raw) > _MAX_SHOWN else "")


def schedule(
    headers: h.HeaderList | None,
    destinations: Collection[str],
    now_ms: int,
    max_delay_s: float,
) -> Scheduled | Reject:
    """Read a tier record's ``kep-delay-topic`` and ``kep-delay-due``; ``Reject`` when either is missing or not
    what kep writes, the destination is not a topic of the topology, or the due time is beyond ``max_delay_s``
    from ``now_ms``."""
    raw_topic = h.header_bytes(headers, h.DELAY_TOPIC)
    raw_due = h.header_bytes(headers, h.DELAY_DUE)
    if raw_topic is None:
        return Reject(f"no {h.DELAY_TOPIC} header")
    try:
        destination = raw_topic.decode("ascii")
    except UnicodeDecodeError:
        return Reject(f"{h.DELAY_TOPIC} {_shown(raw_topic)} is not ASCII")
    if destination not in destinations:
        return Reject(f"{h.DELAY_TOPIC} {_shown(raw_topic)} is not a topic of the topology")
    if raw_due is None:
        return Reject(f"no {h.DELAY_DUE} header")
    due = h.parse_int(raw_due)
    if due is None or due < 0:
        return Reject(f"{h.DELAY_DUE} {_shown(raw_due)} is not a time in milliseconds")
    if due - now_ms > max_delay_s * 1000:
        return Reject(f"{h.DELAY_DUE} {due} is more than max_delay ({max_delay_s:.0f}s) ahead")
    return Scheduled(destination, due)


def leave_ms(timestamp_ms: int, first_seen_ms: int, tier_s: float, due_ms: int) -> int:
    """When a record leaves its tier: a tier's delay after it was written (or first seen, if earlier), at the
    latest when it is due."""
    tier_ms = round(tier_s * 1000)
    written = min(timestamp_ms, first_seen_ms) if timestamp_ms > 0 else first_seen_ms
    return min(written + tier_ms, due_ms)


def next_step(delays: DelaySpec, scheduled: Scheduled, now_ms: int) -> Deliver | Hold | Retier:
    """What a record that left its tier (or was just read, see ``first_step``) does next."""
    remaining_ms = scheduled.due_ms - now_ms
    if remaining_ms <= 0:
        return Deliver(scheduled.destination)
    if remaining_ms < delays.smallest_s * 1000:
        return Hold(scheduled.due_ms)
    return Retier(delays.tier_for(remaining_ms / 1000).topic)


def forward_headers(headers: h.HeaderList | None) -> list[tuple[str, h.HeaderValue]]:
    """The record's headers without the delay headers: what the destination gets."""
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
    return [(name, value) for name, value in pairs if name not in _DELAY_HEADERS]
