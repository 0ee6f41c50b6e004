"""The state topic's records folded into each schedule's state: the newest firing wins over a late zombie's,
pauses and firings never overwrite each other, and a foreign record is ignored."""

from __future__ import annotations

import pytest

from kep.consumers.schedules import StateView, paused_record
from kep.consumers.schedules.state import fired_record

pytestmark = pytest.mark.unit


def test_the_latest_firing_wins_even_when_an_older_record_comes_last() -> None:
    view = StateView()
    view.apply(*fired_record("sync", 1_000, None))  # the baseline
    assert view.get("sync").baseline and view.get("sync").last_fired_ms == 1_000
    view.apply(*fired_record("sync", 3_000, "id-3"))
    view.apply(*fired_record("sync", 2_000, "id-2"))  # a leader that had lost its partition, writing late
    state = view.get("sync")
    assert (state.last_fired_ms, state.last_event_id, state.baseline) == (3_000, "id-3", False)


def test_pause_and_resume_are_kept_apart_from_firings() -> None:
    view = StateView()
    view.apply(*fired_record("sync", 1_000, "id-1"))
    view.apply(*paused_record("sync", True, 1_500))
    view.apply(*fired_record("sync", 2_000, "id-2"))
    assert view.get("sync").paused and view.get("sync").resumed_ms() is None
    view.apply(*paused_record("sync", False, 5_000))
    state = view.get("sync")
    assert (state.paused, state.resumed_ms(), state.last_fired_ms) == (False, 5_000, 2_000)
    assert view.get("other").last_fired_ms is None and not view.get("other").paused


@pytest.mark.parametrize(
    ("key", "value"),
    [(b"fired/sync", b"not json"), (b"fired/sync", b"[1]"), (b"other/sync", b"{}"), (b"paused/sync", b'{"paused": 1}'),
     (b"\xff", b"{}"), (b"fired/sync", None)],
)  # fmt: skip
def test_a_record_that_is_not_keps_is_ignored(key: bytes, value: bytes | None) -> None:
    view = StateView()
    view.apply(*fired_record("sync", 1_000, "id-1"))
    view.apply(key, value)
    assert view.get("sync").last_fired_ms == 1_000 and not view.get("sync").paused
