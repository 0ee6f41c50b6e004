"""Burrow-style status: each rule of ``consumers.lag.status`` on a fake clock, and the window bookkeeping."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from kep.consumers.lag import LagError, PartitionWindow, Sample, Status, StatusTracker, evaluate, worst

pytestmark = pytest.mark.unit

W = 60.0  # window, seconds


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def run(
    observations: Sequence[tuple[int | None, int | None]],
    *,
    step: float = 10.0,
    consumers_active: bool | None = None,
    window_s: float = W,
) -> Status:
    """Observe ``(committed, log_end)`` pairs ``step`` seconds apart and return the final status."""
    clock = FakeClock()
    tracker: StatusTracker[str] = StatusTracker(window_s, clock)
    for index, (committed, log_end) in enumerate(observations):
        if index:
            clock.advance(step)
        tracker.observe("p", committed=committed, log_end=log_end)
    return tracker.status("p", consumers_active=consumers_active)


# -- rule 1: ERR -------------------------------------------------------------------------------------------
def test_a_partition_never_observed_is_err() -> None:
    assert StatusTracker[str](W).status("unknown") is Status.ERR
    assert evaluate([], now=0.0, window_s=W) is Status.ERR


def test_an_unreadable_newest_sample_is_err_even_after_a_healthy_history() -> None:
    assert run([(10, 10)] * 7 + [(10, None)]) is Status.ERR


def test_a_readable_sample_after_an_error_clears_err() -> None:
    assert run([(10, 20), (10, None), (20, 20)]) is Status.OK


# -- rule 2: OK when caught up or too little history -------------------------------------------------------
def test_caught_up_is_ok_even_when_the_offset_never_moves() -> None:
    assert run([(50, 50)] * 10, consumers_active=False) is Status.OK


def test_lag_with_an_unchanged_offset_is_ok_until_the_window_is_complete() -> None:
    # 5 samples 10 s apart span 40 s < 60 s: no sample is old enough to anchor the window.
    assert run([(10, 20)] * 5) is Status.OK
    # the 7th sample is 60 s after the first: the window is complete and the partition is stalled.
    assert run([(10, 20)] * 7) is Status.STALL


def test_a_retry_tier_holding_records_not_due_yet_is_ok_until_its_first_one_is_due() -> None:
    clock = FakeClock()
    tracker: StatusTracker[str] = StatusTracker(W, clock)
    for _ in range(7):  # a whole window and more, offset frozen, two records waiting for their due time
        tracker.observe("tier", committed=10, log_end=12, not_due=True)
        tracker.observe("main", committed=10, log_end=12)  # the same history on a partition without the flag
        clock.advance(10.0)
    assert tracker.status("tier", consumers_active=True) is Status.OK
    assert tracker.status("tier", consumers_active=False) is Status.OK  # nothing is late, members or not
    assert tracker.status("main", consumers_active=True) is Status.STALL
    tracker.observe("tier", committed=10, log_end=12)  # the first one came due and the offset still stands
    assert tracker.status("tier", consumers_active=True) is Status.STALL
    assert tracker.status("tier", consumers_active=False) is Status.STOP


# -- rules 3 and 4: STOP and STALL --------------------------------------------------------------------------
def test_unchanged_offset_with_lag_for_a_whole_window_is_stall_while_members_may_be_there() -> None:
    assert run([(10, 20)] * 7, consumers_active=True) is Status.STALL
    assert run([(10, 20)] * 7, consumers_active=None) is Status.STALL


def test_unchanged_offset_with_lag_and_no_active_member_is_stop() -> None:
    assert run([(10, 20)] * 7, consumers_active=False) is Status.STOP


def test_growing_log_with_a_frozen_offset_is_stall() -> None:
    assert run([(10, 20 + i) for i in range(7)]) is Status.STALL


def test_no_commit_at_all_with_waiting_records_is_stall() -> None:
    assert run([(None, 5)] * 7) is Status.STALL


def test_a_moment_without_lag_inside_the_window_is_not_a_stall() -> None:
    # The consumer was caught up 30 s ago; records arrived since. Not a whole window of waiting work.
    history = [(10, 20), (10, 20), (10, 20), (10, 10), (10, 15), (10, 15), (10, 15)]
    assert run(history) is Status.OK


def test_one_commit_inside_the_window_clears_stall() -> None:
    history = [(10, 30)] * 4 + [(11, 30)] + [(11, 30)] * 2
    assert run(history) is Status.OK


def test_stall_is_reported_again_once_a_full_window_passed_since_the_last_commit() -> None:
    history = [(10, 30)] * 4 + [(11, 30)] * 7
    assert run(history) is Status.STALL


# -- rule 5: WARN -------------------------------------------------------------------------------------------
def test_committing_but_falling_behind_is_warn() -> None:
    # offsets advance by 5 per step, the log by 10: lag 10, 15, 20, ... never shrinks.
    history = [(100 + 5 * i, 110 + 10 * i) for i in range(7)]
    assert run(history) is Status.WARN


def test_lag_that_grows_then_shrinks_once_is_ok() -> None:
    lags = [10, 15, 20, 18, 25, 30, 35]
    history = [(100 + i, 100 + i + lag) for i, lag in enumerate(lags)]
    assert run(history) is Status.OK


def test_steady_lag_with_advancing_commits_is_ok() -> None:
    assert run([(100 + 10 * i, 150 + 10 * i) for i in range(7)]) is Status.OK


def test_falling_behind_needs_a_complete_window() -> None:
    assert run([(100 + 5 * i, 110 + 10 * i) for i in range(5)]) is Status.OK


def test_a_rewound_offset_is_a_change_not_a_stall() -> None:
    history = [(50, 60)] * 6 + [(0, 60)]
    assert run(history) is Status.OK


# -- window bookkeeping -------------------------------------------------------------------------------------
def test_the_window_keeps_one_anchor_at_or_before_its_start_and_drops_older_samples() -> None:
    window = PartitionWindow(30.0)
    for t in range(0, 100, 10):
        window.add(Sample(float(t), 1, 2))
    assert [s.at for s in window.samples] == [60.0, 70.0, 80.0, 90.0]


def test_an_unreadable_sample_is_never_the_anchor() -> None:
    window = PartitionWindow(30.0)
    for t, log_end in [(0, 5), (10, None), (20, None), (30, None), (40, 5)]:
        window.add(Sample(float(t), 1, log_end))
    assert window.samples[0].at == 0.0
    # the errors inside the span are skipped: 40 s of an unchanged offset with lag
    assert window.status(40.0) is Status.STALL


def test_evaluation_later_than_the_last_sample_uses_the_later_window_start() -> None:
    samples = [Sample(float(t), 1, 5) for t in (0, 10, 20)]
    assert evaluate(samples, now=25.0, window_s=30.0) is Status.OK  # start -5: no anchor
    assert evaluate(samples, now=35.0, window_s=30.0) is Status.STALL  # start 5: anchor at 0


def test_samples_out_of_time_order_are_rejected() -> None:
    window = PartitionWindow(10.0)
    window.add(Sample(5.0, 1, 1))
    with pytest.raises(LagError, match="time order"):
        window.add(Sample(4.0, 1, 1))


@pytest.mark.parametrize("window_s", [0.0, -1.0])
def test_a_window_must_be_positive(window_s: float) -> None:
    with pytest.raises(LagError, match="window"):
        StatusTracker[str](window_s)


def test_retain_forgets_partitions_that_disappeared() -> None:
    tracker: StatusTracker[str] = StatusTracker(W, FakeClock())
    for key in ("a", "b", "c"):
        tracker.observe(key, committed=1, log_end=1)
    tracker.retain(["a", "c"])
    assert sorted(tracker.keys()) == ["a", "c"]
    assert tracker.status("b") is Status.ERR


# -- lag of a sample, worst-of ------------------------------------------------------------------------------
def test_sample_lag_uses_the_log_start_without_a_commit_and_never_goes_below_zero() -> None:
    assert Sample(0.0, 7, 10).lag == 3
    assert Sample(0.0, None, 10, log_start=4).lag == 6
    assert Sample(0.0, 12, 10).lag == 0
    assert Sample(0.0, 12, None).lag is None


def test_group_status_is_the_worst_in_severity_order() -> None:
    assert worst([]) is Status.OK
    assert worst([Status.OK, Status.WARN]) is Status.WARN
    assert worst([Status.STOP, Status.STALL, Status.WARN]) is Status.STOP
    assert worst([Status.ERR, Status.STOP]) is Status.ERR
    assert [s.severity for s in Status] == [0, 1, 2, 3, 4]
