"""Settling outcomes without a broker: a fake producer whose delivery callbacks the test fires."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Message
from structlog.testing import capture_logs

from kep.consumers.outcome import DUPLICATE, HANDLED, Drop, Forward, Redo, Rerun
from kep.consumers.runtime.partition import PartitionState
from kep.consumers.runtime.settle import Settler
from kep.producers import headers as h

pytestmark = pytest.mark.unit

RETRY, DLQ = "orders.g.retry.1s", "orders.g.dlq"


@dataclass
class Sent:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    on_delivery: Any


@dataclass
class FakeProducer:
    sent: list[Sent] = field(default_factory=list)
    full: int = 0  # produce calls to refuse with BufferError
    refuse_now: dict[str, int] = field(default_factory=dict)  # topic -> error code raised by produce
    polls: int = 0
    acked: int = 0

    def __len__(self) -> int:  # records not acknowledged yet, as librdkafka counts them
        return len(self.sent) - self.acked

    def produce(self, topic: str, value: Any = None, key: Any = None, **kw: Any) -> None:
        if self.full:
            self.full -= 1
            raise BufferError("queue full")
        if topic in self.refuse_now:
            raise KafkaException(KafkaError(self.refuse_now[topic]))
        self.sent.append(Sent(topic, key, value, kw["headers"], kw["on_delivery"]))

    def poll(self, timeout: float = 0) -> int:
        self.polls += 1
        return 0

    def flush(self, timeout: float = 0) -> int:
        return 0

    def ack(self, index: int = -1, error: int | None = None) -> None:
        self.acked += 1
        self.sent[index].on_delivery(None if error is None else KafkaError(error), None)


class Counts:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def skipped_duplicate(self, topic: str) -> None:
        self.calls.append(("duplicate", topic))

    def retried(self, topic: str, tier: str) -> None:
        self.calls.append(("retried", topic, tier))

    def dead_lettered(self, topic: str) -> None:
        self.calls.append(("dead-lettered", topic))


def setup(limits: dict[str, int] | None = None) -> tuple[Settler, FakeProducer, PartitionState, Counts]:
    producer, counts = FakeProducer(), Counts()
    settler = Settler(group="g", producer=producer, limits=limits, metrics=counts)  # type: ignore[arg-type]
    state = PartitionState("orders", 0, "orders", None, [])
    state.tracker.extend([0, 1, 2])
    return settler, producer, state, counts


def msg(offset: int = 0, value: bytes | None = b"value", key: bytes | None = b"key") -> Message:
    return Message(
        topic="orders", partition=0, offset=offset, key=key, value=value, headers=[], timestamp=(1, 5)
    )


def retry(headers: list[tuple[str, bytes | None]] | None = None) -> Forward:
    return Forward(RETRY, headers or [(h.ATTEMPT, b"1"), (h.DUE_TIME, b"9")], "retry", DLQ, tier="1s")


def test_handled_and_duplicate_finish_their_offsets() -> None:
    settler, _, state, counts = setup()
    assert settler.settle(state, msg(0), HANDLED) is None
    assert settler.settle(state, msg(1), DUPLICATE) is None
    assert state.tracker.processed == 2
    assert counts.calls == [("duplicate", "orders")]


def test_a_rerun_waits_then_runs_again_and_a_revoked_one_stays_unfinished() -> None:
    settler, _, state, counts = setup()
    redo = Redo(attempt=2)
    assert settler.settle(state, msg(0), Rerun(0.0, "retry-in-place", redo)) is redo
    assert counts.calls == [("retried", "orders", "blocking")]
    state.token.cancel()
    assert settler.settle(state, msg(0), Rerun(60.0, "store-unavailable", redo)) is None  # woken at once
    assert state.tracker.processed is None  # never finished: the next owner runs it


def test_a_forwarded_record_is_finished_only_once_acknowledged() -> None:
    settler, producer, state, counts = setup()
    assert settler.settle(state, msg(0), retry()) is None
    [sent] = producer.sent
    assert (sent.topic, sent.key, sent.value) == (RETRY, b"key", b"value")
    assert state.tracker.processed is None
    producer.ack()
    assert state.tracker.processed == 1
    assert counts.calls == [("retried", "orders", "1s")]


def test_a_failed_delivery_is_sent_again_from_the_poll_thread() -> None:
    settler, producer, state, _ = setup()
    settler.settle(state, msg(0), retry())
    producer.ack(error=KafkaError._MSG_TIMED_OUT)
    assert len(producer.sent) == 1  # nothing sent from the callback itself
    settler.poll()
    assert [s.topic for s in producer.sent] == [RETRY, RETRY]
    producer.ack()
    assert state.tracker.processed == 1


def test_a_retry_record_the_broker_refuses_goes_to_the_dead_letter_topic() -> None:
    settler, producer, state, _ = setup()
    settler.settle(state, msg(0), retry())
    producer.ack(error=KafkaError.MSG_SIZE_TOO_LARGE)
    settler.poll()
    dead = producer.sent[-1]
    assert dead.topic == DLQ and dead.value == b"value"
    assert h.header_bytes(dead.headers, h.DUE_TIME) is None
    assert "MSG_SIZE_TOO_LARGE" in (h.header_str(dead.headers, h.FORWARD_ERROR) or "")
    producer.ack()
    assert state.tracker.processed == 1


def test_a_refused_dead_letter_is_cut_then_sent_as_provenance_alone_then_dropped_loudly() -> None:
    settler, producer, state, _ = setup()
    headers = [(h.ATTEMPT, b"3"), ("custom", b"x" * 5000)]
    settler.settle(state, msg(0, value=b"v" * 10_000), Forward(DLQ, headers, "dead-letter"))
    producer.ack(error=KafkaError.INVALID_RECORD)
    settler.poll()
    cut = producer.sent[-1]
    assert h.header_str(cut.headers, h.TRUNCATED) == "10000"
    producer.ack(error=KafkaError.INVALID_RECORD)
    settler.poll()
    minimal = producer.sent[-1]
    assert minimal.value is None and h.header_bytes(minimal.headers, "custom") is None
    assert h.header_int(minimal.headers, h.ATTEMPT) == 3
    with capture_logs() as logs:
        producer.ack(error=KafkaError.INVALID_RECORD)
        settler.poll()
    assert len(producer.sent) == 3
    assert state.tracker.processed == 1  # dropped, not stalled
    assert [e["event"] for e in logs] == ["message dropped: no form of it could be forwarded"]


def test_a_record_over_its_topic_limit_is_cut_before_it_is_sent() -> None:
    settler, producer, state, counts = setup(limits={RETRY: 5000, DLQ: 5000})
    big = b"\x00" + b"z" * 20_000
    settler.settle(state, msg(0, value=big), retry())
    [sent] = producer.sent
    assert sent.topic == DLQ  # too large for the retry tier: dead-lettered
    assert sent.value is not None and len(sent.value) < 5000 and big.startswith(sent.value)
    assert h.header_str(sent.headers, h.TRUNCATED) == str(len(big))
    assert "exceeds max.message.bytes 5000 of orders.g.retry.1s" in (
        h.header_str(sent.headers, h.FORWARD_ERROR) or ""
    )
    assert counts.calls == [("dead-lettered", "orders")]


def test_a_too_large_retry_without_a_dead_letter_topic_is_dropped_not_stalled() -> None:
    settler, producer, state, _ = setup(limits={RETRY: 2000})
    settler.settle(state, msg(0, value=b"z" * 10_000), Forward(RETRY, [], "retry", None, tier="1s"))
    assert producer.sent == [] and state.tracker.processed == 1


def test_a_record_the_client_refuses_at_once_takes_its_next_form() -> None:
    settler, producer, state, _ = setup()
    producer.refuse_now[RETRY] = KafkaError.MSG_SIZE_TOO_LARGE
    settler.settle(state, msg(0), retry())
    assert [s.topic for s in producer.sent] == [DLQ]


def test_a_full_queue_is_waited_out_on_the_lane() -> None:
    settler, producer, state, _ = setup()
    producer.full = 3
    settler.settle(state, msg(0), retry())
    assert len(producer.sent) == 1 and producer.polls == 0  # lanes never poll the producer


def test_a_drop_finishes_the_offset_with_an_error_log() -> None:
    settler, _, state, _ = setup()
    with capture_logs() as logs:
        settler.settle(state, msg(0), Drop("message dropped: dead letters are disabled", "KeyError: x"))
    assert state.tracker.processed == 1
    assert [(e["log_level"], e["event"], e["error"]) for e in logs] == [
        ("error", "message dropped: dead letters are disabled", "KeyError: x")
    ]


def test_cancelled_partitions_are_not_sent_again() -> None:
    settler, producer, state, _ = setup()
    settler.settle(state, msg(0), retry())
    state.token.cancel()
    producer.ack(error=KafkaError._MSG_TIMED_OUT)
    settler.poll()
    assert len(producer.sent) == 1 and state.tracker.processed is None


def test_the_producer_is_polled_while_records_are_in_flight_and_otherwise_once_a_second() -> None:
    now = [100.0]
    producer = FakeProducer()
    settler = Settler(group="g", producer=producer, metrics=Counts(), clock=lambda: now[0])  # type: ignore[arg-type]
    settler.poll()
    settler.poll()
    assert producer.polls == 1  # nothing in flight: each poll gives up the GIL for nothing
    state = PartitionState("orders", 0, "orders", None, [])
    state.tracker.extend([0])
    settler.settle(state, msg(0), retry())
    settler.poll()
    settler.poll()
    assert producer.polls == 3  # a record in flight: its delivery report is served at once
    producer.ack()
    now[0] += 1.0
    settler.poll()
    assert producer.polls == 4
