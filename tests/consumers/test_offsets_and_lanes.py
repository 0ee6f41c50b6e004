from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from kep.consumers.runtime.lanes import Lane
from kep.consumers.runtime.offsets import OffsetTracker
from tests.support.wait import wait_until

pytestmark = pytest.mark.unit


def test_commit_advances_only_over_the_contiguous_finished_prefix() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12, 14):  # 13 is a gap (a transaction marker, say)
        tracker.add(offset)
    assert tracker.committable() is None
    tracker.done(12)
    tracker.done(11)
    assert tracker.committable() is None, "10 is unfinished: nothing may be committed"
    tracker.done(10)
    assert tracker.committable() == 13
    tracker.mark_committed(13)
    assert tracker.committable() is None
    tracker.done(14)
    assert tracker.committable() == 15
    assert tracker.in_flight == 0


def test_failed_commit_is_offered_again() -> None:
    tracker = OffsetTracker()
    tracker.add(0)
    tracker.done(0)
    tracker.mark_committed(1)
    tracker.forget_committed()
    assert tracker.committable() == 1


def test_finishing_out_of_order_stays_cheap_with_a_long_backlog() -> None:
    tracker = OffsetTracker()
    for offset in range(100_000):
        tracker.add(offset)
    for offset in range(1, 100_000):  # offset 0 is stuck (say, waiting for its retry record's ack)
        tracker.done(offset)
    assert tracker.committable() is None and tracker.in_flight == 1
    tracker.done(0)
    assert tracker.committable() == 100_000 and tracker.in_flight == 0


def test_a_lane_runs_its_items_in_order_and_lanes_run_in_parallel() -> None:
    pool = ThreadPoolExecutor(4)
    seen: dict[str, list[int]] = {"a": [], "b": []}
    both_running = threading.Barrier(2, timeout=5)

    def run(item: tuple[str, int]) -> None:
        name, n = item
        if n == 0:
            both_running.wait()  # fails unless the two lanes run at the same time
        seen[name].append(n)

    a, b = Lane(pool, run), Lane(pool, run)
    a.submit([("a", i) for i in range(100)])
    b.submit([("b", i) for i in range(100)])
    wait_until(lambda: len(seen["a"]) == len(seen["b"]) == 100, timeout=10, message="lanes drained")
    assert seen["a"] == list(range(100)) and seen["b"] == list(range(100))
    pool.shutdown()


def test_cancel_drops_queued_items() -> None:
    pool = ThreadPoolExecutor(1)
    release = threading.Event()
    ran: list[int] = []

    def run(n: int) -> None:
        release.wait(5)
        ran.append(n)

    lane = Lane(pool, run)
    lane.submit(range(10))
    assert lane.cancel() >= 9
    release.set()
    assert lane.wait_idle(5)
    assert ran == [0]
    pool.shutdown()


def test_a_lane_behind_merges_what_is_submitted_into_bigger_batches_in_order() -> None:
    from kep.consumers.runtime.partition import PartitionState
    from kep.consumers.runtime.worker import MERGED_BATCH, merge_items

    pool = ThreadPoolExecutor(1)
    release = threading.Event()
    batches: list[tuple[str, list[int]]] = []

    def run(item: tuple[PartitionState, list[int]]) -> None:
        release.wait(5)
        batches.append((item[0].topic, list(item[1])))

    a = PartitionState("a", 0, "a", None, [])
    b = PartitionState("b", 0, "b", "1s", [])
    lane: Lane[tuple[PartitionState, list[int]]] = Lane(pool, run, merge=merge_items)  # type: ignore[arg-type]
    lane.submit([(a, [0])])  # taken at once: running, never merged into
    wait_until(lambda: lane.backlog == 0, timeout=5, message="the first item was taken")
    lane.submit([(a, [1, 2])])
    lane.submit([(a, [3])])  # folded into the queued one
    lane.submit([(b, [0])])  # another partition's: its own item
    lane.submit([(a, list(range(4, 4 + MERGED_BATCH)))])  # would be too big a batch
    release.set()
    assert lane.wait_idle(5)
    assert [(topic, items[:4]) for topic, items in batches] == [
        ("a", [0]),
        ("a", [1, 2, 3]),
        ("b", [0]),
        ("a", [4, 5, 6, 7]),
    ]
    pool.shutdown()
