"""``KeysInFlight`` with a fake clock: one holder per key at a time in a process, the same holder again (a
message run again in place) keeps it, a key is free once given back, and an entry whose lane stopped lapses
after the lease instead of holding the key for ever."""

from __future__ import annotations

import pytest

from kep.consumers.runtime import keys_in_flight
from kep.consumers.runtime.keys_in_flight import KeysInFlight

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_holder_at_a_time_and_the_same_holder_again() -> None:
    keys = KeysInFlight(30.0, clock=Clock())
    assert keys.take("k", "lane-a")
    assert not keys.take("k", "lane-b")  # another message of this process holds it
    assert keys.take("k", "lane-a")  # run again in place: still its own
    assert keys.take("other", "lane-b")
    keys.drop(["k"])  # its completion is stored
    assert keys.take("k", "lane-b")
    assert not keys.take("k", "lane-a")  # now lane-b's


def test_an_entry_left_behind_lapses_after_the_lease() -> None:
    clock = Clock()
    keys = KeysInFlight(30.0, clock=clock)
    assert keys.take("k", "stopped lane")
    clock.now += 29.9
    assert not keys.take("k", "next")
    clock.now += 0.2
    assert keys.take("k", "next")  # lapsed


def test_lapsed_entries_are_swept_when_many(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys_in_flight, "SWEEP_ABOVE", 10)
    clock = Clock()
    keys = KeysInFlight(1.0, clock=clock)
    for i in range(10):
        keys.take(i, "left behind")
    clock.now += 2
    keys.take("new", "lane")
    assert len(keys) == 1
