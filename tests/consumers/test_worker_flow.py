"""The poll thread's bookkeeping with a fake consumer and a fake clock, no broker: dispatch, retries held until
due (and bounded), the in-flight bound's pauses, and what revoke leaves uncommitted."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import Message, TopicPartition

from kep.consumers.app import App
from kep.consumers.runtime import plan as plan_module
from kep.consumers.runtime.build import build_worker
from kep.consumers.runtime.partition import BACKPRESSURE, HOLDING, WorkItem
from kep.consumers.runtime.worker import Worker
from kep.producers import headers as h
from kep.topology.model import ConsumerGroupSpec, RetrySpec, TopicSpec, Topology
from kep.topology.settings import KafkaSettings
from tests.support.runtime import settings
from tests.support.wait import wait_until

pytestmark = pytest.mark.unit

NOW = 1_700_000_000_000
TOPOLOGY = Topology(
    topics=(TopicSpec(name="orders", partitions=1, value_schema="kep.orders.OrderPlaced"),),
    groups=(
        ConsumerGroupSpec(name="billing", topics=("orders",), retry=RetrySpec(delays=("2s",), jitter=0.5)),
    ),
)
TIER = "orders.billing.retry.2s"


@dataclass
class FakeConsumer:
    paused: set[tuple[str, int]] = field(default_factory=set)
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def pause(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.paused.add((tp.topic, tp.partition))
            self.calls.append(("pause", (tp.topic, tp.partition)))

    def resume(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.paused.discard((tp.topic, tp.partition))
            self.calls.append(("resume", (tp.topic, tp.partition)))

    def seek(self, tp: TopicPartition) -> None:
        self.calls.append(("seek", (tp.topic, tp.partition, tp.offset)))

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.calls.append(("commit", [(tp.topic, tp.partition, tp.offset) for tp in offsets]))

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool) -> tuple[int, int]:
        return (0, 0)

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        self.calls.append(("consume", num_messages))
        return []

    def close(self) -> None:
        pass


@dataclass
class FakeTiers(FakeConsumer):
    """The retry tiers' reader (``tier_reader.py``), sharing the fake consumer's pauses and calls."""

    topics: frozenset[str] = frozenset({TIER})
    adopted: list[tuple[str, int]] = field(default_factory=list)

    def adopt(self, partitions: list[TopicPartition]) -> None:
        self.adopted += [(tp.topic, tp.partition) for tp in partitions if tp.topic in self.topics]

    def start_pending(self, group_consumer: Any) -> None:
        pass

    def drop(self, partitions: list[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self.adopted = [tp for tp in self.adopted if tp not in gone]


class Clock:
    now = NOW

    def __call__(self) -> int:
        return self.now


@dataclass
class Runs:
    """The lanes' work: records each batch, finishes nothing unless told to."""

    seen: list[tuple[str, int]] = field(default_factory=list)
    items: list[WorkItem] = field(default_factory=list)

    def __call__(self, item: WorkItem) -> None:
        state, msgs = item
        self.items.append(item)
        self.seen += [(m.topic(), m.offset()) for m in msgs]  # type: ignore[misc]

    def finish_all(self) -> None:
        for state, msgs in self.items:
            for msg in msgs:
                state.tracker.done(msg.offset())  # type: ignore[arg-type]


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Worker, FakeConsumer, Clock, Runs]]:
    monkeypatch.setattr(plan_module, "topic_limits", lambda kafka, topics: dict.fromkeys(topics, 1_000_000))
    app = App("billing", topics=["orders"])
    app.handler("orders")(lambda event, ctx: None)
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:1")
    plain = settings(max_in_flight=4, retry_batch_wait_s=0)  # each retry at its due time (gathering: below)
    built = build_worker(app, plain, kafka, topology=TOPOLOGY, probe=False)
    clock, runs, fake = Clock(), Runs(), FakeConsumer()
    worker = Worker(built.plan, built.processor, metrics=built.metrics, health=built.health, clock_ms=clock)
    built._consumer.close()
    real = worker._consumer
    worker._consumer = fake  # type: ignore[assignment]
    assert worker._tiers is not None
    worker._tiers.close()
    worker._tiers = FakeTiers(paused=fake.paused, calls=fake.calls)  # type: ignore[assignment]
    worker.processor = runs  # type: ignore[assignment]  # lanes run this instead of the processor
    worker._on_assign(fake, [TopicPartition("orders", 0), TopicPartition(TIER, 0)])  # type: ignore[arg-type]
    yield worker, fake, clock, runs
    worker._pool.shutdown(wait=True)
    real.close()


def msg(topic: str, offset: int, due: int | None = None, written: int = NOW) -> Message:
    headers = [] if due is None else [(h.DUE_TIME, str(due).encode())]
    return Message(
        topic=topic, partition=0, offset=offset, value=b"v", headers=headers, timestamp=(1, written)
    )


def test_main_records_go_to_their_lane_and_retries_wait_for_their_due_time(
    worker: tuple[Worker, FakeConsumer, Clock, Runs],
) -> None:
    w, fake, clock, runs = worker
    w._dispatch(
        [msg("orders", 0), msg(TIER, 0, due=NOW + 1500), msg(TIER, 1, due=NOW + 500), msg(TIER, 2, due=NOW)]
    )
    wait_until(lambda: len(runs.seen) == 2, timeout=5, message="main record and the due retry ran")
    assert sorted(runs.seen) == [("orders", 0), (TIER, 2)]
    assert ("seek", (TIER, 0, 0)) not in fake.calls and not fake.paused  # nothing paused, nothing rewound
    assert 0.0 < w._consume_timeout() <= 0.1

    clock.now = NOW + 500  # offset 1 is due before offset 0, which was read first
    w._release_due()
    wait_until(lambda: (TIER, 1) in runs.seen, timeout=5, message="the sooner-due retry ran")
    assert (TIER, 0) not in runs.seen
    clock.now = NOW + 1500
    w._release_due()
    wait_until(lambda: (TIER, 0) in runs.seen, timeout=5, message="the later-due retry ran")


def test_retries_coming_due_together_are_handed_on_as_one_batch_never_early(
    worker: tuple[Worker, FakeConsumer, Clock, Runs],
) -> None:
    w, _, clock, runs = worker
    held = w._states[(TIER, 0)].held
    assert held is not None
    held.gather_ms = 250  # as the default retry_batch_wait_s gives a 2 s tier
    w._dispatch([msg(TIER, n, due=NOW + 100 * (n + 1)) for n in range(3)] + [msg(TIER, 3, due=NOW + 900)])
    for step in (100, 200, 300, 349):  # offsets 0-2 come due one by one; the soonest has waited < 250 ms
        clock.now = NOW + step
        w._release_due()
    assert w._consume_timeout() == pytest.approx(0.001) and not runs.seen
    clock.now = NOW + 350
    w._release_due()
    wait_until(lambda: len(runs.seen) == 3, timeout=5, message="the due retries ran")
    assert [len(msgs) for _, msgs in runs.items] == [3]  # one lane batch
    assert (TIER, 3) not in runs.seen  # not due yet: never early
    clock.now = NOW + 1149
    w._release_due()
    clock.now = NOW + 1150
    w._release_due()
    wait_until(lambda: (TIER, 3) in runs.seen, timeout=5, message="the last retry ran")
    assert [len(msgs) for _, msgs in runs.items] == [3, 1]


def test_a_forged_due_time_waits_no_longer_than_the_tier(
    worker: tuple[Worker, FakeConsumer, Clock, Runs],
) -> None:
    w, _, clock, runs = worker
    w._dispatch([msg(TIER, 0, due=9_999_999_999_999, written=NOW)])
    clock.now = NOW + 2000 * 1.5 + 1000  # delay 2 s, jitter 0.5, 1 s of clock slack
    w._release_due()
    wait_until(lambda: runs.seen == [(TIER, 0)], timeout=5, message="bounded by the tier")


def test_held_retries_are_never_committed_past(worker: tuple[Worker, FakeConsumer, Clock, Runs]) -> None:
    w, fake, clock, runs = worker
    w._dispatch([msg(TIER, 0, due=NOW + 1000), msg(TIER, 1, due=NOW)])
    wait_until(lambda: runs.seen == [(TIER, 1)], timeout=5, message="the due one ran")
    runs.finish_all()
    state = w._states[(TIER, 0)]
    assert state.tracker.committable() is None  # offset 1 is done, but 0 is held: nothing to commit
    w._committer.commit(w._states.values(), asynchronous=True)
    assert not [c for c in fake.calls if c[0] == "commit"]


def test_the_in_flight_bound_stops_fetching_then_pauses_and_resumes(
    worker: tuple[Worker, FakeConsumer, Clock, Runs],
) -> None:
    w, fake, clock, runs = worker
    w._dispatch([msg("orders", n) for n in range(4)])  # max_in_flight=4
    assert w._fetch() == [] and not [c for c in fake.calls if c[0] == "consume"]  # at the bound: no fetch
    w._backpressure()
    assert not fake.paused  # not paused at once: the lanes wake the poll thread when they make room
    w._pause_after_s = 0.0  # no room came for that long
    w._backpressure()
    assert ("orders", 0) in fake.paused and BACKPRESSURE in w._states[("orders", 0)].pause_reasons
    assert w._fetch() == [] and ("consume", 1) in fake.calls  # paused: serves the consumer's callbacks
    wait_until(lambda: len(runs.seen) == 4, timeout=5, message="dispatched")
    runs.finish_all()
    w._backpressure()
    assert not fake.paused
    w._fetch()
    assert ("consume", 4) in fake.calls  # room again: fetches as much as fits


def test_a_retry_partition_holding_its_share_pauses_until_half_is_due(
    worker: tuple[Worker, FakeConsumer, Clock, Runs],
) -> None:
    w, fake, clock, runs = worker
    w._dispatch([msg(TIER, n, due=NOW + 100 * (n + 1)) for n in range(4)])
    w._backpressure()
    assert HOLDING in w._states[(TIER, 0)].pause_reasons and (TIER, 0) in fake.paused
    clock.now = NOW + 200
    w._release_due()
    w._backpressure()
    assert not fake.paused
    assert ("orders", 0) not in fake.paused  # the main partition never waited for the retries


def test_revoke_drops_held_retries_uncommitted(worker: tuple[Worker, FakeConsumer, Clock, Runs]) -> None:
    w, fake, clock, runs = worker
    w._dispatch([msg(TIER, 0, due=NOW + 60_000)])
    state = w._states[(TIER, 0)]
    w._on_revoke(fake, [TopicPartition(TIER, 0)])  # type: ignore[arg-type]
    assert state.token.cancelled and state.held is not None and len(state.held) == 0
    assert state.tracker.committable() is None and runs.seen == []


def test_retry_tiers_are_read_by_their_own_reader_and_ignored_from_the_group_consumer(
    worker: tuple[Worker, FakeConsumer, Clock, Runs],
) -> None:
    w, fake, clock, runs = worker
    tiers = w._tiers
    assert isinstance(tiers, FakeTiers) and tiers.adopted == [(TIER, 0)]  # the group assigned it: read there
    w._fetch = lambda: [msg("orders", 0), msg(TIER, 0, due=NOW)]  # type: ignore[method-assign]
    tiers.consume = lambda count: [msg(TIER, 0, due=NOW)]  # type: ignore[method-assign]
    w._poll_once()
    wait_until(lambda: len(runs.seen) == 2, timeout=5, message="both records ran")
    assert sorted(runs.seen) == [("orders", 0), (TIER, 0)]  # the tier record once, not twice
    assert w._states[(TIER, 0)].tracker.in_flight == 1
    w._on_revoke(fake, [TopicPartition(TIER, 0)])  # type: ignore[arg-type]
    assert tiers.adopted == []
