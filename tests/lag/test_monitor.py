"""``LagMonitor`` on the broker: a poll's lag in messages and seconds for known offsets, group discovery and
filtering, and the window status of a group nobody consumes (fake clock)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from kep.consumers.lag import GroupLag, LagError, LagMonitor, Status
from tests.lag.support import commit, now_ms, produce, settings

pytestmark = [pytest.mark.integration, pytest.mark.embedded]

N = 40
K = 15


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def monitor(kafka: str, group_id: str, clock: FakeClock) -> Iterator[LagMonitor]:
    with LagMonitor(settings(kafka), group_filter=group_id, window_s=30.0, clock=clock) as m:
        yield m


@pytest.fixture
def scene(kafka: str, topic_factory: Callable[..., str], group_id: str) -> tuple[str, list[int]]:
    """Partition 0: N records from now - 60 s, committed at K. Partition 1: 5 records, committed at the end
    (caught up). Partition 2: empty. Partition 3: 7 records and no commit."""
    topic = topic_factory(partitions=4, prefix="lagmon")
    base = now_ms() - 60_000
    timestamps = produce(kafka, topic, 0, [base + i * 500 for i in range(N)], batches=3)
    produce(kafka, topic, 1, [base] * 5)
    produce(kafka, topic, 3, [base - 1000] * 7)
    commit(kafka, group_id, {(topic, 0): K, (topic, 1): 5})
    return topic, timestamps


def only(snapshot_groups: tuple[GroupLag, ...], group: str) -> GroupLag:
    assert [g.group for g in snapshot_groups] == [group]
    return snapshot_groups[0]


def test_a_poll_reports_exact_lag_for_known_offsets(
    monitor: LagMonitor, scene: tuple[str, list[int]], group_id: str
) -> None:
    topic, timestamps = scene
    before = time.time()
    group = only(monitor.poll().groups, group_id)
    after = time.time()
    by_partition = {p.partition: p for p in group.partitions if p.topic == topic}
    assert sorted(by_partition) == [0, 1, 2, 3]

    lagging = by_partition[0]
    assert (lagging.committed, lagging.log_end, lagging.lag_messages) == (K, N, N - K)
    assert lagging.lag_seconds is not None
    assert before - timestamps[K] / 1000 - 0.01 <= lagging.lag_seconds <= after - timestamps[K] / 1000 + 0.01

    caught_up = by_partition[1]
    assert (caught_up.committed, caught_up.log_end, caught_up.lag_messages, caught_up.lag_seconds) == (
        5,
        5,
        0,
        0.0,
    )
    empty = by_partition[2]
    assert (empty.committed, empty.log_end, empty.lag_messages, empty.lag_seconds) == (None, 0, 0, 0.0)

    no_commit = by_partition[3]
    assert (no_commit.committed, no_commit.position, no_commit.log_end, no_commit.lag_messages) == (
        None,
        0,
        7,
        7,
    )
    assert no_commit.lag_seconds is not None and no_commit.lag_seconds > 60

    assert group.lag_messages == N - K + 7
    assert group.topic_lag() == {topic: N - K + 7}
    assert group.state == "EMPTY"  # committed without joining: nobody is a member
    assert group.status is Status.OK  # one poll: no window yet


def test_a_group_with_lag_and_no_member_turns_stop_after_a_window_without_commits(
    kafka: str, monitor: LagMonitor, scene: tuple[str, list[int]], group_id: str, clock: FakeClock
) -> None:
    topic, _ = scene
    assert only(monitor.poll().groups, group_id).status is Status.OK
    clock.now += 15
    assert only(monitor.poll().groups, group_id).status is Status.OK
    clock.now += 15
    group = only(monitor.poll().groups, group_id)
    statuses = {p.partition: p.status for p in group.partitions}
    assert statuses == {0: Status.STOP, 1: Status.OK, 2: Status.OK, 3: Status.STOP}
    assert group.status is Status.STOP

    # a commit on partition 0 clears it; partition 3 still has waiting records and no commit
    commit(kafka, group_id, {(topic, 0): N})
    clock.now += 5
    group = only(monitor.poll().groups, group_id)
    assert {p.partition: p.status for p in group.partitions}[0] is Status.OK
    assert group.status is Status.STOP


def test_the_group_filter_matches_whole_ids_and_probe_groups_are_never_reported(
    kafka: str, scene: tuple[str, list[int]], group_id: str
) -> None:
    topic, _ = scene
    sibling = f"{group_id}-other"
    commit(kafka, sibling, {(topic, 0): 1})
    with LagMonitor(settings(kafka), group_filter=f"{group_id}.*") as both:
        assert [g.group for g in both.poll().groups] == [group_id, sibling]
        assert not [g for g in both.groups() if g.startswith("kep-lag-probe-")]
    with LagMonitor(settings(kafka), group_filter=group_id[:-2]) as prefix_only:
        assert prefix_only.poll().groups == ()


def test_an_invalid_group_filter_names_the_pattern(kafka: str) -> None:
    with pytest.raises(LagError, match=r"invalid group filter '\('"):
        LagMonitor(settings(kafka), group_filter="(")


def test_a_partition_the_probe_cannot_read_is_err_and_so_is_its_group(
    kafka: str, topic_factory: Callable[..., str], group_id: str
) -> None:
    topic = topic_factory(partitions=2, prefix="lagerr")
    produce(kafka, topic, 0, [now_ms()] * 3)
    produce(kafka, topic, 1, [now_ms()] * 3)
    # partition 1 committed past its log end (as after a topic was recreated): no broker answers a fetch there
    commit(kafka, group_id, {(topic, 0): 3, (topic, 1): 10})
    with LagMonitor(settings(kafka), group_filter=group_id, timeout_s=1.0) as monitor:
        group = only(monitor.poll().groups, group_id)
    statuses = {p.partition: p.status for p in group.partitions}
    assert statuses == {0: Status.OK, 1: Status.ERR}
    unreadable = group.partitions[1]
    assert (unreadable.committed, unreadable.log_end, unreadable.lag_messages) == (10, None, None)
    assert group.status is Status.ERR
