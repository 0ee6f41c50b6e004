"""Retry records held until due: bounded due times, soonest first, with the clock passed in (no broker)."""

from __future__ import annotations

import pytest

from kep.consumers.runtime.held import CLOCK_SLACK_MS, HeldRetries, gather_ms, max_wait_ms
from kep.producers import headers as h

pytestmark = pytest.mark.unit

NOW = 1_700_000_000_000


def due(value: bytes) -> list[tuple[str, bytes]]:
    return [(h.DUE_TIME, value)]


def test_the_longest_wait_is_the_tier_delay_with_all_its_jitter() -> None:
    assert max_wait_ms(5.0, 0.5) == 7500 + CLOCK_SLACK_MS
    assert max_wait_ms(0.2, 0.0) == 200 + CLOCK_SLACK_MS


def test_a_due_time_centuries_away_is_bounded_by_the_tier() -> None:
    held = HeldRetries(max_wait_ms(1.0, 0.0))
    written = NOW - 300
    assert held.due_ms(due(b"9999999999999"), written, NOW) == written + 1000 + CLOCK_SLACK_MS


def test_a_record_written_in_the_future_is_bounded_from_now() -> None:
    held = HeldRetries(2000)
    assert held.due_ms(due(b"9999999999999"), NOW + 10**9, NOW) == NOW + 2000


@pytest.mark.parametrize("value", [b"soon", b"--1", b"9" * 5000, b"", "\u0663".encode()])
def test_an_unreadable_due_time_is_due_now(value: bytes) -> None:
    assert HeldRetries(2000).due_ms(due(value), NOW, NOW) == NOW


def test_a_legitimate_due_time_is_kept_exactly() -> None:
    held = HeldRetries(max_wait_ms(1.0, 0.5))
    written = NOW - 10
    legit = written + 1400  # delay 1 s plus 0.4 s of jitter
    assert held.due_ms(due(str(legit).encode()), written, NOW) == legit


def test_a_due_record_is_released_before_a_later_due_one_fetched_ahead_of_it() -> None:
    held = HeldRetries(10_000)
    held.hold(NOW + 900, "later, fetched first")
    held.hold(NOW + 300, "sooner, fetched second")
    held.hold(NOW + 300, "sooner too, fetched third")
    assert held.next_due_ms == NOW + 300
    assert held.release(NOW + 299) == []
    assert held.release(NOW + 300) == ["sooner, fetched second", "sooner too, fetched third"]
    assert len(held) == 1 and held.next_due_ms == NOW + 900
    assert held.release(NOW + 10_000) == ["later, fetched first"]
    assert held.next_due_ms is None


def test_the_gathering_time_is_the_setting_at_most_a_quarter_of_the_delay() -> None:
    assert gather_ms(1.0, 0.25) == 250
    assert gather_ms(0.2, 0.25) == 50
    assert gather_ms(3600.0, 0.25) == 250
    assert gather_ms(5.0, 0.0) == 0


def test_records_due_together_are_released_together_once_the_soonest_waited_never_early() -> None:
    held = HeldRetries(10_000, gather_ms=250)
    for offset, due_at in enumerate((NOW + 100, NOW + 200, NOW + 300, NOW + 900)):
        held.hold(due_at, offset)
    assert held.next_due_ms == NOW + 100 and held.next_release_ms == NOW + 350
    assert held.release(NOW + 349) == []
    assert held.release(NOW + 350) == [0, 1, 2]  # 3 not due yet
    assert held.next_release_ms == NOW + 1150
    assert held.release(NOW + 1149) == []
    assert held.release(NOW + 1150) == [3]
    assert held.next_release_ms is None


def test_records_let_go_unrun_are_counted_as_waiting_for_good() -> None:
    held = HeldRetries(10_000)
    held.hold(NOW + 1, "a")
    held.hold(NOW + 2, "b")
    held.clear()
    assert len(held) == 0 and held.waiting == 2
