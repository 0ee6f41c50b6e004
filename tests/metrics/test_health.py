"""Health: liveness follows the poll loop beat and stuck rebalances; readiness the assignment and shutdown."""

from __future__ import annotations

import pytest

from kep.consumers.metrics import Health, MetricsError

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ready_health(clock: FakeClock, ttl: float = 30.0) -> Health:
    health = Health(ttl_s=ttl, clock=clock)
    health.connected(True)
    health.assigned(3)
    return health


def test_a_new_worker_is_live_for_one_ttl_before_its_first_beat() -> None:
    clock = FakeClock()
    health = Health(ttl_s=10, clock=clock)
    clock.now += 10
    assert health.live()[0]
    clock.now += 0.5
    ok, reason = health.live()
    assert not ok and "poll loop silent for 10.5s" in reason


def test_a_beat_keeps_the_worker_live_and_silence_past_the_ttl_kills_it() -> None:
    clock = FakeClock()
    health = Health(ttl_s=10, clock=clock)
    for _ in range(5):
        clock.now += 9
        health.beat()
        assert health.live()[0]
    clock.now += 10.1
    assert health.live() == (False, "poll loop silent for 10.1s (ttl 10s)")


def test_a_rebalance_stuck_longer_than_the_ttl_is_not_live_even_while_beating() -> None:
    clock = FakeClock()
    health = ready_health(clock, ttl=10)
    health.rebalancing(True)
    clock.now += 6
    health.rebalancing(True)  # a second start does not restart the stopwatch
    health.beat()
    assert health.live()[0]
    clock.now += 5
    health.beat()
    ok, reason = health.live()
    assert not ok and reason.startswith("rebalancing for 11.0s")
    health.rebalancing(False)
    assert health.live()[0]


def test_rebalancing_flips_readiness_and_back() -> None:
    clock = FakeClock()
    health = ready_health(clock)
    assert health.ready() == (True, "3 partitions assigned")
    health.rebalancing(True)
    assert health.ready() == (False, "rebalancing")
    health.rebalancing(False)
    assert health.ready()[0]


def test_not_ready_until_connected_and_assigned() -> None:
    health = Health(clock=FakeClock())
    assert health.ready() == (False, "not connected to the cluster")
    health.connected(True)
    assert health.ready() == (False, "no partitions assigned")
    health.assigned(1)
    assert health.ready() == (True, "1 partitions assigned")
    health.connected(False)
    assert not health.ready()[0]


def test_an_idle_by_design_worker_is_ready_without_partitions() -> None:
    health = Health(clock=FakeClock())
    health.connected(True)
    health.assigned(0)
    health.idle_by_design(True)
    assert health.ready() == (True, "idle by design")


def test_stopping_is_not_ready_but_still_live_while_draining() -> None:
    clock = FakeClock()
    health = ready_health(clock)
    health.stopping()
    assert health.ready() == (False, "stopping")
    assert health.live()[0]


def test_a_non_positive_ttl_is_refused() -> None:
    with pytest.raises(MetricsError, match="ttl_s must be > 0, got 0"):
        Health(ttl_s=0)
