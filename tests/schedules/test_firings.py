"""When a schedule fires: across daylight-saving changes in a non-UTC zone, after downtime (skip or catch up),
and with which id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kep.consumers.schedules import due_firings, firing_id, next_firing, trigger_id
from kep.topology.model import ScheduleSpec

pytestmark = pytest.mark.unit

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def spec(cron: str, timezone: str = "Europe/Berlin", **more: Any) -> ScheduleSpec:
    return ScheduleSpec(
        name="sync", cron=cron, timezone=timezone, event="kep.orders.OrderPlaced", topic="orders", **more
    )


def firings(schedule: ScheduleSpec, start: datetime, count: int) -> list[datetime]:
    found, at = [], start.astimezone(UTC)
    for _ in range(count):
        upcoming = next_firing(schedule, at)
        assert upcoming is not None
        found.append(upcoming)
        at = upcoming
    return found


def local(found: list[datetime], zone: ZoneInfo = BERLIN) -> list[str]:
    return [at.astimezone(zone).isoformat() for at in found]


def test_a_daily_time_follows_the_local_clock_across_both_changes() -> None:
    # 09:00 Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
    found = firings(spec("0 9 * * *"), datetime(2026, 3, 28, 12, tzinfo=BERLIN), 2)
    assert [at.strftime("%d %H:%M") for at in found] == ["29 07:00", "30 07:00"]
    found = firings(spec("0 9 * * *"), datetime(2026, 10, 24, 12, tzinfo=BERLIN), 2)
    assert [at.strftime("%d %H:%M") for at in found] == ["25 08:00", "26 08:00"]


def test_a_daily_time_the_spring_change_skips_fires_once_right_after_the_gap() -> None:
    # 2026-03-29 02:00 -> 03:00 in Berlin: 02:30 does not exist that day.
    found = firings(spec("30 2 * * *"), datetime(2026, 3, 28, 12, tzinfo=BERLIN), 3)
    assert local(found) == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]


def test_a_daily_time_the_autumn_change_repeats_fires_once_at_its_first_occurrence() -> None:
    # 2026-10-25 03:00 -> 02:00 in Berlin: 02:30 happens twice (CEST, then CET).
    found = firings(spec("30 2 * * *"), datetime(2026, 10, 24, 12, tzinfo=BERLIN), 2)
    assert local(found) == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]


def test_an_hourly_schedule_follows_real_time_one_hour_apart_across_both_changes() -> None:
    spring = firings(spec("0 * * * *"), datetime(2026, 3, 29, 0, 30, tzinfo=BERLIN), 3)
    assert local(spring) == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T04:00:00+02:00",
    ]
    autumn = firings(spec("0 * * * *"), datetime(2026, 10, 25, 1, 30, tzinfo=BERLIN), 3)
    assert local(autumn) == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]
    for found in (spring, autumn):
        assert {b - a for a, b in zip(found, found[1:], strict=False)} == {timedelta(hours=1)}


def test_the_zone_is_the_schedules_own() -> None:
    found = firings(spec("0 9 * * *", "America/New_York"), datetime(2026, 3, 7, 12, tzinfo=UTC), 2)
    assert local(found, NEW_YORK) == [
        "2026-03-07T09:00:00-05:00",
        "2026-03-08T09:00:00-04:00",
    ]  # DST from the 8th
    assert [at.hour for at in found] == [14, 13]


def test_next_firing_is_strictly_after_the_instant_given() -> None:
    every_second = spec("* * * * * *")
    at = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert next_firing(every_second, at) == at + timedelta(seconds=1)
    assert next_firing(every_second, at + timedelta(milliseconds=500)) == at + timedelta(seconds=1)


NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def test_catch_up_fires_every_missed_firing_oldest_first() -> None:
    due = due_firings(spec("* * * * *", missed="catch_up"), NOW - timedelta(minutes=5, seconds=30), NOW)
    assert due.fire == tuple(NOW - timedelta(minutes=m) for m in (5, 4, 3, 2, 1, 0))
    assert due.skipped == 0


def test_catch_up_is_bounded_by_its_limit_keeping_the_latest() -> None:
    due = due_firings(spec("* * * * *", missed="catch_up", catch_up_limit=3), NOW - timedelta(hours=3), NOW)
    assert due.fire == (NOW - timedelta(minutes=2), NOW - timedelta(minutes=1), NOW)
    assert due.skipped == 177 and not due.skipped_more  # 180 missed, 3 fired


def test_catch_up_after_a_week_of_one_second_firings_costs_one_window() -> None:
    due = due_firings(spec("* * * * * *", missed="catch_up", catch_up_limit=5), NOW - timedelta(days=7), NOW)
    assert due.fire == tuple(NOW - timedelta(seconds=s) for s in (4, 3, 2, 1, 0))
    assert due.skipped_more and due.skipped == 10_000  # counted up to a bound


def test_skip_fires_only_what_is_within_grace_and_goes_on_with_the_next() -> None:
    hourly = spec("0 * * * *", missed="skip", grace="1m")
    due = due_firings(hourly, NOW - timedelta(hours=5, minutes=30), NOW + timedelta(minutes=20))
    assert due.fire == () and due.skipped == 6  # 06:00 .. 12:00 all more than a minute late
    assert next_firing(hourly, NOW + timedelta(minutes=20)) == NOW + timedelta(hours=1)
    late = due_firings(hourly, NOW - timedelta(minutes=30), NOW + timedelta(seconds=20))
    assert late.fire == (NOW,) and late.skipped == 0  # 20 s late: on time enough


def test_nothing_is_due_before_the_next_firing() -> None:
    assert due_firings(spec("0 * * * *", missed="catch_up"), NOW, NOW + timedelta(minutes=59)).fire == ()


def test_a_firings_id_is_the_same_everywhere_and_differs_per_firing_and_schedule() -> None:
    at = datetime(2026, 3, 29, 3, 0, tzinfo=BERLIN)
    assert firing_id("sync", at) == firing_id("sync", at.astimezone(UTC))  # one instant, any zone
    assert (
        firing_id("sync", at) == "326f3862-4786-5a7e-8526-6724ea3ee83b"
    )  # pinned: a new version must not change ids
    assert firing_id("sync", at) != firing_id("sync", at + timedelta(seconds=1))
    assert firing_id("sync", at) != firing_id("other", at)
    assert firing_id("sync", at)[14] == "5"  # uuid5: reproducible from the name and the instant
    assert trigger_id() != trigger_id() != firing_id("sync", at)
    with pytest.raises(ValueError, match="no time zone"):
        firing_id("sync", datetime(2026, 1, 1))
