"""Retry topics with increasing delays and a dead-letter topic, proved on the broker."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

import pytest
from confluent_kafka import Producer

from kep.consumers.app import App
from kep.consumers.context import MessageContext
from kep.producers import headers as h
from shop.orders import OrderPlaced
from tests.support.kafka import read_records
from tests.support.runtime import applied_topology, produce_orders, running
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.embedded]


class Flaky(Exception):
    pass


class Invalid(Exception):
    pass


def test_message_failing_k_times_succeeds_on_its_tier_k_run(kafka: str) -> None:
    setup = applied_topology(kafka, partitions=2, delays=(0.5, 1, 1.5))
    tiers = setup.spec.retry_tiers(setup.topic)
    events = produce_orders(setup, 4)
    fail_times = {e.event_id: k for k, e in enumerate(events)}  # event k fails k times
    app = App(setup.group, topics=[setup.topic])
    runs: dict[str, list[tuple[int, str]]] = defaultdict(list)
    succeeded: dict[str, tuple[int, str]] = {}

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        runs[event.event_id].append((ctx.attempt, ctx.received_from))
        if len(runs[event.event_id]) <= fail_times[event.event_id]:
            raise Flaky("not yet")
        succeeded[event.event_id] = (ctx.attempt, ctx.received_from)

    with running(app, setup):
        wait_until(lambda: len(succeeded) == len(events), timeout=60, message="all succeeded")
    for event in events:
        k = fail_times[event.event_id]
        expected_topic = setup.topic if k == 0 else tiers[k - 1].topic
        assert succeeded[event.event_id] == (k + 1, expected_topic)
        assert [a for a, _ in runs[event.event_id]] == list(range(1, k + 2))


def test_always_failing_message_is_dead_lettered_after_exactly_the_attempts_with_provenance(
    kafka: str,
) -> None:
    setup = applied_topology(kafka, partitions=1, delays=(0.3, 0.6))
    [event] = produce_orders(setup, 1)
    app = App(setup.group, topics=[setup.topic])
    attempts: list[int] = []

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        attempts.append(ctx.attempt)
        raise Flaky(f"attempt {ctx.attempt} failed")

    dlq = setup.spec.dlq_topic(setup.topic)
    assert dlq is not None
    with running(app, setup):
        [record] = read_records(kafka, dlq, 1, timeout=30)
    assert attempts == [1, 2, 3]
    headers = record.headers()
    assert h.header_str(headers, h.ORIGINAL_TOPIC) == setup.topic
    assert h.header_int(headers, h.ORIGINAL_PARTITION) == 0
    assert h.header_int(headers, h.ORIGINAL_OFFSET) == 0
    assert h.header_int(headers, h.ORIGINAL_TIMESTAMP) is not None
    assert h.header_str(headers, h.CONSUMER_GROUP) == setup.group
    assert h.header_int(headers, h.ATTEMPT) == 3
    first, last = h.header_int(headers, h.FIRST_FAILURE_TIME), h.header_int(headers, h.LAST_FAILURE_TIME)
    assert first is not None and last is not None and last - first >= 900  # two delays: 0.3 s + 0.6 s
    assert h.header_str(headers, h.EXCEPTION_TYPE) == f"{__name__}.Flaky"
    assert h.header_str(headers, h.EXCEPTION_MESSAGE) == "attempt 3 failed"
    assert "raise Flaky" in (h.header_str(headers, h.EXCEPTION_TRACEBACK) or "")
    assert h.header_str(headers, h.IDEMPOTENCY_KEY) == event.event_id
    assert h.header_str(headers, h.EVENT_TYPE) == "kep.orders.OrderPlaced"  # original headers kept
    assert record.key() == event.order_id.encode()


def test_fatal_error_skips_the_retry_tiers(kafka: str) -> None:
    setup = applied_topology(kafka, partitions=1, delays=(0.3, 0.6))
    produce_orders(setup, 1)
    app = App(setup.group, topics=[setup.topic], fatal=[Invalid])
    attempts: list[int] = []

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        attempts.append(ctx.attempt)
        raise Invalid("bad order")

    dlq = setup.spec.dlq_topic(setup.topic)
    assert dlq is not None
    with running(app, setup):
        [record] = read_records(kafka, dlq, 1, timeout=30)
    assert attempts == [1]
    assert h.header_int(record.headers(), h.ATTEMPT) == 1
    for tier in setup.spec.retry_tiers(setup.topic):
        assert read_records(kafka, tier.topic, 1, timeout=0.5) == []


def test_corrupt_bytes_reach_the_dead_letter_topic_unchanged(kafka: str) -> None:
    setup = applied_topology(kafka, partitions=1, delays=(0.3,))
    corrupt = [
        b"\xc3\x01" + b"\x00" * 8 + b"\xff\xff",
        b"not avro at all",
        b"\xc3\x01\x01\x02\x03\x04\x05\x06\x07\x08x",
    ]
    producer = Producer({"bootstrap.servers": kafka})
    for i, value in enumerate(corrupt):
        producer.produce(setup.topic, key=f"k{i}".encode(), value=value, headers=[("custom", b"kept")])
    producer.produce(setup.topic, key=b"tombstone", value=None)
    assert producer.flush(10) == 0
    good = produce_orders(setup, 1)
    app = App(setup.group, topics=[setup.topic])
    handled: list[str] = []

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        handled.append(event.event_id)

    dlq = setup.spec.dlq_topic(setup.topic)
    assert dlq is not None
    with running(app, setup):
        records = read_records(kafka, dlq, len(corrupt) + 1, timeout=30)
        wait_until(lambda: handled, timeout=30, message="the good event after the poison ones")
    assert [r.value() for r in records] == [*corrupt, None]
    assert [r.key() for r in records] == [b"k0", b"k1", b"k2", b"tombstone"]
    for record in records[:3]:
        assert h.header_str(record.headers(), "custom") == "kept"
        assert h.header_str(record.headers(), h.EXCEPTION_TYPE) in (
            "kep.schemas.errors.DecodeError",
            "kep.schemas.errors.UnknownSchemaError",
        )
    assert handled == [good[0].event_id]


def test_no_retry_runs_before_its_due_time_and_other_partitions_keep_flowing(kafka: str) -> None:
    setup = applied_topology(kafka, partitions=3, delays=(2,))
    first = produce_orders(setup, 30, seed=1)
    failing = {e.event_id for e in first[:10]}
    app = App(setup.group, topics=[setup.topic])
    lateness_ms: list[int] = []
    handled_at: dict[str, float] = {}
    retry_due: list[float] = []
    lock = threading.Lock()

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        now_ms = time.time() * 1000
        with lock:
            if ctx.attempt > 1:
                due = h.header_int(ctx.headers, h.DUE_TIME)
                assert due is not None
                lateness_ms.append(int(now_ms - due))
            elif event.event_id in failing:
                retry_due.append(now_ms + 2000)
                raise Flaky("once")
            handled_at[event.event_id] = time.monotonic()

    with running(app, setup):
        wait_until(lambda: len(retry_due) == len(failing), timeout=30, message="first failures")
        failed_by = time.monotonic()
        later = produce_orders(setup, 60, seed=2)
        wait_until(lambda: all(e.event_id in handled_at for e in later), timeout=30, message="later events")
        flowed_by = time.monotonic()
        wait_until(lambda: len(lateness_ms) == len(failing), timeout=30, message="retries ran")
    assert min(lateness_ms) >= 0, f"a retry ran {-min(lateness_ms)} ms early"
    assert flowed_by - failed_by < 2.0, "other partitions waited for the retry delay"


def test_dead_letters_disabled_drop_after_retries_and_keep_going(kafka: str) -> None:
    setup = applied_topology(kafka, partitions=1, delays=(0.2,), dead_letter=False)
    events = produce_orders(setup, 3)
    app = App(setup.group, topics=[setup.topic])
    seen: list[tuple[str, int]] = []

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> Any:
        seen.append((event.event_id, ctx.attempt))
        if event.event_id == events[0].event_id:
            raise Flaky("always")

    with running(app, setup):
        wait_until(lambda: len(seen) == 4, timeout=30, message="2 runs of the bad event + 2 good ones")
    assert seen.count((events[0].event_id, 2)) == 1


def test_blocking_mode_retries_in_place_and_keeps_partition_order(kafka: str) -> None:
    setup = applied_topology(kafka, partitions=1, delays=(0.2, 0.4), mode="blocking")
    assert setup.spec.retry_tiers(setup.topic) == []
    events = produce_orders(setup, 5)
    app = App(setup.group, topics=[setup.topic])
    order: list[tuple[str, int]] = []

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        order.append((event.event_id, ctx.attempt))
        if event.event_id == events[1].event_id and ctx.attempt < 3:
            raise Flaky("in place")

    with running(app, setup):
        wait_until(lambda: len(order) == 7, timeout=30, message="5 events, one of them run 3 times")
    assert [event_id for event_id, _ in order] == [
        events[0].event_id, events[1].event_id, events[1].event_id, events[1].event_id,
        events[2].event_id, events[3].event_id, events[4].event_id,
    ]  # fmt: skip
    assert [attempt for _, attempt in order[1:4]] == [1, 2, 3]


def test_a_due_retry_runs_while_the_main_topic_backlog_still_waits(kafka: str) -> None:
    """Retry tiers have a fetch path of their own: a retry record never waits behind what was fetched of the
    main topic (librdkafka hands records out of one queue, megabytes of them per fetch)."""
    setup = applied_topology(kafka, partitions=1, delays=(0.5,))
    events = produce_orders(setup, 20_000)
    first = events[0].event_id
    app = App(setup.group, topics=[setup.topic])
    handled: list[str] = []
    handled_when_retried: list[int] = []

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        if event.event_id == first:
            if ctx.attempt == 1:
                raise Flaky("once")
            handled_when_retried.append(len(handled))
        time.sleep(0.0005)  # sleep-ok: the handler's work, about 10 s of backlog on the one main partition
        handled.append(event.event_id)

    with running(app, setup):
        wait_until(lambda: handled_when_retried, timeout=60, message="the retry ran")
    assert handled_when_retried[0] < len(events) // 2, (
        f"the retry ran after {handled_when_retried[0]} of {len(events)} main records"
    )
