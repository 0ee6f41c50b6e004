"""Lag on Apache Kafka: log ends from ListOffsets at the group's isolation level, transaction markers and
aborted records, a compacted source, a commit below the log start after DeleteRecords, no commit at all, and
reads only where there is lag. The embedded broker has visible aborts, no compaction and no DeleteRecords."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from confluent_kafka import Consumer, IsolationLevel, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]
from prometheus_client import CollectorRegistry, generate_latest

from kep.consumers.lag import GroupLag, LagCollector, LagMonitor, LagProbe, PollState, Status
from kep.consumers.metrics import PartitionState, WorkerMetrics
from tests.conftest import FAST_GROUP_CONFIG
from tests.lag.support import commit, metric_samples, now_ms, produce, settings, value
from tests.metrics.support import StaticSource, sample, scrape
from tests.support.kafka import unique
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration]


@pytest.fixture(autouse=True)
def _apache_kafka_only(kafka_kind: str) -> None:
    if kafka_kind == "embedded":
        pytest.skip(
            "Apache Kafka behaviour: the embedded broker shows aborted records, answers ListOffsets latest "
            "wrong, never compacts and has no DeleteRecords"
        )


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


def only(groups: tuple[GroupLag, ...], group: str) -> GroupLag:
    assert [g.group for g in groups] == [group]
    return groups[0]


def end_offset(bootstrap: str, topic: str, partition: int, *, committed: bool) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    level = IsolationLevel.READ_COMMITTED if committed else IsolationLevel.READ_UNCOMMITTED
    tp = TopicPartition(topic, partition)
    return int(admin.list_offsets({tp: OffsetSpec.latest()}, isolation_level=level)[tp].result(10).offset)


def transactions(bootstrap: str, topic: str, txns: Sequence[tuple[list[int], bool]]) -> None:
    """One transaction per ``(timestamps, commit)`` on partition 0, each record and marker taking an offset;
    returns once the markers are written (the last stable offset reached the high watermark)."""
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": unique("txn"), "linger.ms": 5})
    producer.init_transactions(30)
    for timestamps, commit_it in txns:
        producer.begin_transaction()
        for ts in timestamps:
            producer.produce(topic, value=b"x" * 20, key=b"k", partition=0, timestamp=ts)
        producer.flush(30)
        if commit_it:
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)
    wait_until(
        lambda: (
            end_offset(bootstrap, topic, 0, committed=True)
            == end_offset(bootstrap, topic, 0, committed=False)
        ),
        timeout=30,
        message="transaction markers written",
    )


def polls_over_a_window(monitor: LagMonitor, clock: FakeClock, group: str) -> GroupLag:
    """Three polls 15 s apart on the fake clock: the 30 s window is complete at the last one."""
    only(monitor.poll().groups, group)
    clock.now += 15
    only(monitor.poll().groups, group)
    clock.now += 15
    return only(monitor.poll().groups, group)


def test_a_caught_up_group_whose_commit_sits_on_a_transaction_marker_has_no_lag_and_stays_ok(
    kafka: str, topic_factory: Callable[..., str], group_id: str, monitor: LagMonitor, clock: FakeClock
) -> None:
    """Records 0-4 and a commit marker at 5; the group read them all and committed 5 (the next record).
    The log end is 6: counting offsets, the group would wait for a record that never comes and go STOP."""
    topic = topic_factory(partitions=2, prefix="lagtxn")
    base = now_ms() - 60_000
    transactions(kafka, topic, [([base + i for i in range(5)], True)])
    # partition 1: a committed transaction, then an aborted one: the group read the committed records
    producer = Producer({"bootstrap.servers": kafka, "transactional.id": unique("txn")})
    producer.init_transactions(30)
    for commit_it in (True, False):
        producer.begin_transaction()
        for i in range(3):
            producer.produce(topic, value=b"y", partition=1, timestamp=base + i)
        producer.flush(30)
        producer.commit_transaction(30) if commit_it else producer.abort_transaction(30)
    wait_until(
        lambda: end_offset(kafka, topic, 1, committed=True) == 8, timeout=30, message="markers on partition 1"
    )
    commit(kafka, group_id, {(topic, 0): 5, (topic, 1): 3})

    group = polls_over_a_window(monitor, clock, group_id)

    by_partition = {p.partition: p for p in group.partitions}
    assert (by_partition[0].committed, by_partition[0].log_end, by_partition[0].lag_messages) == (5, 6, 0)
    assert (by_partition[1].committed, by_partition[1].log_end, by_partition[1].lag_messages) == (3, 8, 0)
    assert [p.lag_seconds for p in group.partitions] == [0.0, 0.0]
    assert group.status is Status.OK, [p.status for p in group.partitions]


def test_aborted_records_are_not_counted_and_never_give_the_age(
    kafka: str, topic_factory: Callable[..., str], group_id: str, monitor: LagMonitor
) -> None:
    """Offsets 0-4 committed (marker 5), 6-9 aborted (marker 10), 11-13 committed (marker 14): end 15."""
    topic = topic_factory(prefix="lagabort")
    base = now_ms() - 60_000
    first = [base + i for i in range(5)]
    aborted = [base + 1000 + i for i in range(4)]
    last = [now_ms() - 10_000 + i for i in range(3)]
    transactions(kafka, topic, [(first, True), (aborted, False), (last, True)])
    commit(kafka, group_id, {(topic, 0): 5})
    other = unique("g")
    commit(kafka, other, {(topic, 0): 0})

    before = time.time()
    part = only(monitor.poll().groups, group_id).partitions[0]
    assert (part.committed, part.log_end, part.lag_messages) == (5, 15, 3)
    assert part.lag_seconds is not None and part.lag_seconds >= before - last[0] / 1000 - 0.01
    assert part.lag_seconds < 30, "the age is the next committed record's, not an aborted one's"

    with LagMonitor(settings(kafka), group_filter=other) as whole:
        from_start = only(whole.poll().groups, other).partitions[0]
    assert (from_start.log_end, from_start.lag_messages) == (15, 8)

    with LagMonitor(settings(kafka), group_filter=group_id, isolation_level="read_uncommitted") as raw:
        uncommitted = only(raw.poll().groups, group_id).partitions[0]
    assert (uncommitted.log_end, uncommitted.lag_messages) == (
        15,
        7,
    )  # the aborted records and the last three


def test_an_open_transaction_ends_the_log_at_its_first_record_under_read_committed(
    kafka: str, topic_factory: Callable[..., str], group_id: str, monitor: LagMonitor
) -> None:
    topic = topic_factory(prefix="lagopen")
    produce(kafka, topic, 0, [now_ms()] * 4)
    producer = Producer({"bootstrap.servers": kafka, "transactional.id": unique("txn")})
    producer.init_transactions(30)
    producer.begin_transaction()
    for _ in range(5):
        producer.produce(topic, value=b"open", partition=0)
    producer.flush(30)
    try:
        commit(kafka, group_id, {(topic, 0): 2})
        part = only(monitor.poll().groups, group_id).partitions[0]
        assert (part.log_end, part.lag_messages) == (4, 2)  # the last stable offset, not the high watermark
    finally:
        producer.abort_transaction(30)


def compacted_offsets(bootstrap: str, topic: str) -> list[tuple[int, int]]:
    """``(offset, timestamp)`` of every record in partition 0."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": unique("reader"), "enable.partition.eof": True,
         "fetch.wait.max.ms": 10}
    )  # fmt: skip
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        out: list[tuple[int, int]] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            error = msg.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                return out
            assert error is None, error
            out.append((msg.offset() or 0, msg.timestamp()[1]))
        raise AssertionError(f"{topic}: end not reached")
    finally:
        consumer.close()


def test_a_compacted_source_counts_the_records_left_not_the_offsets(
    kafka: str, topic_factory: Callable[..., str], group_id: str, monitor: LagMonitor
) -> None:
    config = {
        "cleanup.policy": "compact",
        "segment.ms": "100",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "100",
    }
    topic = topic_factory(prefix="lagcompact", config=config)
    base = now_ms() - 60_000
    producer = Producer({"bootstrap.servers": kafka, "linger.ms": 5})
    for i in range(30):
        producer.produce(topic, value=b"v", key=b"k%d" % (i % 3), partition=0, timestamp=base + i)
    producer.flush(30)
    fillers = 0

    def compacted() -> bool:
        nonlocal fillers
        # a record after segment.ms rolls the segment, so the cleaner can compact it; each filler key is unique
        producer.produce(topic, value=b"f", key=b"filler-%d" % fillers, partition=0)
        producer.flush(30)
        fillers += 1
        return len(compacted_offsets(kafka, topic)) < 30 + fillers

    wait_until(compacted, timeout=60, interval=0.3, message="the cleaner compacted the log")
    records = compacted_offsets(kafka, topic)
    assert records[0][0] > 5, records
    commit(kafka, group_id, {(topic, 0): 5})  # an offset the cleaner removed

    part = only(monitor.poll().groups, group_id).partitions[0]

    assert part.log_end == 30 + fillers
    assert part.lag_messages == len(records)  # offsets 5..end minus the ones compacted away
    assert part.lag_seconds is not None and part.lag_seconds >= (now_ms() - records[0][1]) / 1000 - 5
    assert part.status is Status.OK


def test_a_commit_below_the_log_start_is_reported_from_the_log_start_and_flagged(
    kafka: str, topic_factory: Callable[..., str], group_id: str, monitor: LagMonitor, clock: FakeClock
) -> None:
    topic = topic_factory(partitions=2, prefix="lagdeleted")
    base = now_ms() - 60_000
    timestamps = produce(kafka, topic, 0, [base + i * 100 for i in range(20)], batches=2)
    produce(kafka, topic, 1, [base] * 4)
    commit(kafka, group_id, {(topic, 0): 3, (topic, 1): 4})
    admin = AdminClient({"bootstrap.servers": kafka})
    admin.delete_records([TopicPartition(topic, 0, 10)])[TopicPartition(topic, 0, 10)].result(10)

    before = time.time()
    snapshot = monitor.poll()
    group = only(snapshot.groups, group_id)

    deleted, untouched = group.partitions
    assert (deleted.committed, deleted.log_start, deleted.position, deleted.log_end) == (3, 10, 10, 20)
    assert (deleted.lag_messages, deleted.below_log_start, deleted.status) == (10, True, Status.OK)
    assert deleted.lag_seconds is not None and deleted.lag_seconds >= before - timestamps[10] / 1000 - 0.01
    assert deleted.as_dict()["below_log_start"] is True
    assert (untouched.lag_messages, untouched.below_log_start) == (0, False)
    registry = CollectorRegistry()
    registry.register(LagCollector(lambda: PollState(snapshot)))
    exported = metric_samples(generate_latest(registry).decode())
    flag = "kep_group_committed_below_log_start"
    assert value(exported, flag, group=group_id, topic=topic, partition=0) == 1
    assert value(exported, flag, group=group_id, topic=topic, partition=1) == 0
    clock.now += 40
    later = only(monitor.poll().groups, group_id)
    assert later.partitions[0].below_log_start and later.partitions[0].lag_messages == 10, "never dropped"


def test_a_member_without_a_commit_lags_from_the_log_start(
    kafka: str, topic_factory: Callable[..., str], group_id: str, monitor: LagMonitor
) -> None:
    topic = topic_factory(prefix="lagnocommit")
    produce(kafka, topic, 0, [now_ms() - 30_000] * 12)
    admin = AdminClient({"bootstrap.servers": kafka})
    admin.delete_records([TopicPartition(topic, 0, 5)])[TopicPartition(topic, 0, 5)].result(10)
    assigned: list[Any] = []
    member = Consumer(
        {"bootstrap.servers": kafka, "group.id": group_id, "enable.auto.commit": False,
         "auto.offset.reset": "latest", **FAST_GROUP_CONFIG}
    )  # fmt: skip
    member.subscribe([topic], on_assign=lambda _c, parts: assigned.extend(parts))
    try:
        wait_until(lambda: member.poll(0.1) is None and assigned, timeout=30, message="assigned")
        group = only(monitor.poll().groups, group_id)
    finally:
        member.close()

    assert group.state == "STABLE" and group.members == 1
    [part] = group.partitions
    assert (part.committed, part.position, part.log_end, part.lag_messages) == (None, 5, 12, 7)
    assert not part.below_log_start
    assert part.lag_seconds is not None and part.lag_seconds >= 29


def test_log_ends_come_from_list_offsets_and_the_log_is_read_only_where_the_group_lags(
    kafka: str, topic_factory: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = topic_factory(partitions=3, prefix="lagreads")
    produce(kafka, topic, 0, [now_ms()] * 10, batches=3)
    produce(kafka, topic, 1, [now_ms()] * 10, batches=3)
    read: list[dict[tuple[str, int], int]] = []
    with LagProbe(settings(kafka)) as probe:
        original = probe._read

        def recording(reads: Any, deadline: float) -> dict[tuple[str, int], int]:
            if reads:
                read.append({key: r.start for key, r in reads.items()})
            return original(reads, deadline)

        monkeypatch.setattr(probe, "_read", recording)
        positions = {(topic, 0): 4, (topic, 1): 10, (topic, 2): 0}  # lagging, caught up, empty
        first = probe.probe(positions)
        assert not probe.log_ends_from_fetch
        assert {k: (a.log_end, a.lag_messages) for k, a in first.items()} == {
            (topic, 0): (10, 6),
            (topic, 1): (10, 0),
            (topic, 2): (0, 0),
        }
        # the lagging partition from its position; the caught-up one once, at its last record, to check
        # ListOffsets against a fetched watermark; the empty one not at all
        assert read == [{(topic, 0): 4, (topic, 1): 9}]
        read.clear()
        again = probe.probe(positions)
        assert again == first
        assert read == [], "an unchanged position is not read again"
        probe.probe({(topic, 0): 7})
        assert read == [{(topic, 0): 7}]


def test_the_worker_metrics_count_no_lag_on_a_transaction_marker(
    kafka: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(prefix="lagworker")
    transactions(kafka, topic, [([now_ms()] * 5, True)])
    # the worker read offsets 0-4 and committed 5; its fetch watermark is the log end, 6
    source = StaticSource([PartitionState(topic, 0, committed=5, processed=5, log_end=6, paused=False)])
    registry = CollectorRegistry()
    metrics = WorkerMetrics("billing", registry=registry)
    with LagProbe(settings(kafka)) as probe:
        metrics.bind(source, probe.probe, probe_timeout_s=10)
        samples = scrape(registry)
    assert sample(samples, "kep_consumer_lag_messages", group="billing", topic=topic, partition=0) == 0
    assert sample(samples, "kep_consumer_lag_seconds", group="billing", topic=topic, partition=0) == 0
