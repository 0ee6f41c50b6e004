"""Rate and concurrency limits of a consumer group's handlers, as declared in the topology.

Under a group, ``limits`` maps a topic the group reads, or an event type (an Avro full name carried by one of
its topics), to a ``LimitSpec``::

    limits:
      orders:                   # every event of the topic
        rate: 50/s              # <count>/<duration>: 50/s, 100/1m, 5/500ms
        burst: 10               # starts allowed back to back after a quiet spell (default 1: evenly spaced)
        concurrency: 5          # handler runs at once, across every replica
        per: field:customer_id  # one limit per value of this event field (default: one for the handler)

The worker enforces them (``kep.consumers.limits``); this module only says what a valid declaration is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator, model_validator

from kep.topology._types import FrozenModel
from kep.topology.durations import parse_duration
from kep.topology.errors import DurationError, Issue

__all__ = ["LimitSpec", "Rate", "describe_limit", "limit_problems", "parse_rate"]

_RATE = re.compile(r"\A[ \t]*(?P<count>[0-9]{1,9})[ \t]*/[ \t]*(?P<period>[^/]+?)[ \t]*\Z", re.ASCII)
_FIELD = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z", re.ASCII)


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` starts per ``period_s`` seconds."""

    count: int
    period_s: float

    @property
    def interval_s(self) -> float:
        """The time between two starts at the steady rate."""
        return self.period_s / self.count

    @property
    def per_second(self) -> float:
        return self.count / self.period_s


def parse_rate(value: str) -> Rate:
    """``"50/s"``, ``"100/1m"``, ``"5/500ms"`` -> ``Rate``; ``ValueError`` naming the value otherwise."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"rate {value!r} is not a string like '50/s' or '100/1m'")
    match = _RATE.fullmatch(value)
    if match is None:
        raise ValueError(f"rate {value!r} is not <count>/<duration>, e.g. '50/s', '100/1m', '5/500ms'")
    count = int(match["count"])
    period = match["period"]
    if period in ("ms", "s", "m", "h", "d"):
        period = "1" + period
    try:
        period_s = parse_duration(period)
    except DurationError as exc:
        raise ValueError(f"rate {value!r}: {exc}") from None
    if count < 1:
        raise ValueError(f"rate {value!r}: the count must be at least 1")
    if period_s <= 0:
        raise ValueError(f"rate {value!r}: the duration must be longer than 0")
    return Rate(count, period_s)


def per_field(value: str) -> str:
    """The event field of a ``per`` declaration: ``field:<name>`` (or ``<name>``) -> ``<name>``."""
    name = value.removeprefix("field:")
    if not _FIELD.fullmatch(name):
        raise ValueError(
            f"per {value!r}: use 'field:<name>' with an event field name, e.g. 'field:customer_id'"
        )
    return name


class LimitSpec(FrozenModel):
    """How fast and how many at once one handler may run (see the module docstring)."""

    rate: str | None = None
    burst: int | None = Field(default=None, ge=1, le=1_000_000)
    concurrency: int | None = Field(default=None, ge=1, le=100_000)
    per: str | None = None

    @field_validator("rate")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value is not None:
            parse_rate(value)
        return value

    @field_validator("per")
    @classmethod
    def _per(cls, value: str | None) -> str | None:
        if value is not None:
            return "field:" + per_field(value)
        return value

    @model_validator(mode="after")
    def _something_to_limit(self) -> LimitSpec:
        if self.burst is not None and self.rate is None:
            raise ValueError("burst needs a rate: it is how many starts the rate allows back to back")
        if self.rate is None and self.concurrency is None:
            raise ValueError("a limit needs a rate (e.g. '50/s'), a concurrency, or both")
        return self

    @property
    def parsed_rate(self) -> Rate | None:
        return parse_rate(self.rate) if self.rate is not None else None

    @property
    def per_field(self) -> str | None:
        return self.per.removeprefix("field:") if self.per is not None else None


def describe_limit(limit: LimitSpec) -> str:
    """``rate 50/s, burst 5, concurrency 3, per field:customer_id``: what is set, in that order."""
    parts = [f"{name} {value}" for name, value in limit.model_dump(exclude_none=True).items()]
    return ", ".join(parts)


def limit_problems(topics: Sequence[Any], groups: Sequence[Any]) -> list[Issue]:
    """A ``limits`` key must name a topic of its group or an event type one of the group's topics carries.

    ``topics`` and ``groups`` are the topology's ``TopicSpec`` and ``ConsumerGroupSpec`` lists.
    """
    carried: dict[str, tuple[str, ...]] = {t.name: t.value_schema for t in topics}
    problems = []
    for index, group in enumerate(groups):
        events = {name for topic in group.topics for name in carried.get(topic, ())}
        for key in group.limits:
            if key in group.topics or key in events:
                continue
            known = ", ".join([*group.topics, *sorted(events)]) or "none"
            problems.append(
                Issue(
                    ("groups", index, "limits", key),
                    f"group {group.name!r} has no topic or event type {key!r} to limit "
                    f"(its topics and event types: {known})",
                )
            )
    return problems
