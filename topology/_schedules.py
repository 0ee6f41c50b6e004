"""Recurring events in the topology: ``schedules:`` and where their state lives (``schedule_state:``).

A schedule publishes one event per firing of a cron expression read in an IANA time zone. What happens on
the cluster (leadership, the state topic, publishing) is ``kep.consumers.schedules``; here is only what the
file says and its checks:

* ``cron``: 5 fields (minute hour day month weekday) or 6 with seconds first, parsed by ``cronsim``
  (the ``schedules`` extra);
* ``timezone``: an IANA name (``Europe/Paris``), read with ``zoneinfo``;
* ``fields``: the event's field values, without ``event_id`` and ``occurred_at`` (each firing sets them);
  checked against the service's own schema by ``kep.topology.loader.check_schedules``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from kep.schemas.events import Event
from kep.topology._types import AvroName, FrozenModel, KafkaName, PositiveDuration

__all__ = ["EXTRA_MISSING", "ScheduleSpec", "ScheduleStateSpec", "check_cron"]

#: Set by each firing, never by ``fields``.
FIRING_FIELDS = ("event_id", "occurred_at")
EXTRA_MISSING = "schedules need the cron parser of the 'schedules' extra: pip install 'kep-kafka[schedules]'"
MAX_CATCH_UP = 10_000


def check_cron(expression: str, zone: ZoneInfo | None = None) -> None:
    """Raise ``ValueError`` saying what is wrong with ``expression`` (cronsim's word for it)."""
    try:
        from cronsim import CronSim, CronSimError
    except ImportError:  # pragma: no cover - the extra is part of dev
        raise ValueError(EXTRA_MISSING) from None
    try:
        CronSim(expression, datetime(2000, 1, 1, tzinfo=zone))
    except CronSimError as exc:
        fields = "5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first"
        raise ValueError(f"cron expression {expression!r} is not valid: {exc} (expected {fields})") from None


class ScheduleSpec(FrozenModel):
    """One recurring event: when (``cron`` in ``timezone``), what (``event`` on ``topic`` with ``fields``,
    keyed by ``key`` or the event's key field) and what to do with firings missed while no scheduler ran."""

    name: KafkaName
    cron: str = Field(min_length=1, max_length=200)
    timezone: str = "UTC"
    event: AvroName
    topic: KafkaName
    key: str | None = Field(default=None, min_length=1)
    fields: dict[str, Any] = Field(default_factory=dict)
    missed: Literal["skip", "catch_up"] = "skip"
    catch_up_limit: int = Field(default=100, ge=1, le=MAX_CATCH_UP)
    grace: PositiveDuration = 60.0

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: expected an IANA name like 'Europe/Paris' or 'UTC'"
            ) from None
        return value

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        check_cron(value)
        return value

    @field_validator("fields")
    @classmethod
    def _no_firing_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in FIRING_FIELDS:
            if name in value:
                raise ValueError(f"{name!r} is set by each firing; leave it out of 'fields'")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def event_for(self, model: type[Event], event_id: str, at: datetime) -> Event:
        """The event of the firing at ``at`` (``pydantic.ValidationError`` when ``fields`` do not fit)."""
        return model.model_validate({**self.fields, "event_id": event_id, "occurred_at": at})


class ScheduleStateSpec(FrozenModel):
    """Where the schedulers keep their state and elect their leader: a compacted one-partition ``topic`` and
    the consumer ``group`` whose owner of partition 0 leads. One pair per service sharing a cluster."""

    topic: KafkaName = "kep.schedules"
    group: KafkaName = "kep-schedules"
    replication_factor: int | None = Field(default=None, ge=1)

    def topic_configs(self) -> dict[str, str]:
        """Compacted (the newest record per key is what counts), with hourly segments so a busy schedule's
        records are compacted within hours, not the default week."""
        return {"cleanup.policy": "compact", "segment.ms": "3600000", "min.cleanable.dirty.ratio": "0.1"}
