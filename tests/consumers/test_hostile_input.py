"""Hostile input, fed as raw bytes and headers with a plain confluent-kafka producer: no record stops a partition.

Each test shows the bad record ends somewhere (handled, or the dead-letter topic with the error named) and the
partition's committed offset moves past it while the records behind it are handled.
"""

from __future__ import annotations

import io
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import structlog
from confluent_kafka import Consumer, Producer, TopicPartition

from kep.consumers.app import App
from kep.consumers.context import MessageContext
from kep.consumers.idempotency.base import ClaimState, Key, key_bytes
from kep.consumers.idempotency.memory import MemoryStore
from kep.consumers.retry.headers import Provenance
from kep.consumers.runtime import processor as processor_module
from kep.consumers.runtime import settle as settle_module
from kep.consumers.runtime.build import build_worker
from kep.logs import configure_logging
from kep.producers import headers as h
from kep.schemas.codec import codec_for
from kep.topology import admin
from kep.topology.model import ConsumerGroupSpec, RetrySpec, TopicSpec, Topology
from kep.topology.settings import KafkaSettings
from shop.orders import LineItem, OrderPlaced
from tests.support.kafka import read_records, unique
from tests.support.runtime import Setup, applied_topology, running, settings
from tests.support.services import require_postgres
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

Headers = Sequence[tuple[str, bytes | None]]


class Flaky(Exception):
    pass


def order(n: int = 0) -> OrderPlaced:
    item = LineItem(sku="sku-1", quantity=1, unit_price_cents=100 + n)
    return OrderPlaced(
        event_id=str(uuid.uuid4()), order_id=f"o-{n}", customer_id="c-1", items=[item], amount_cents=100 + n,
        currency="EUR",
    )  # fmt: skip


def send(kafka: str, topic: str, records: Sequence[tuple[bytes | None, Headers]], **conf: Any) -> None:
    """Each ``(value, headers)`` to partition 0 of ``topic``, in order, keyed ``k<i>``."""
    producer = Producer({"bootstrap.servers": kafka, **conf})
    for i, (value, headers) in enumerate(records):
        producer.produce(topic, value=value, key=f"k{i}".encode(), partition=0, headers=list(headers))
    assert producer.flush(30) == 0


def valid(event: OrderPlaced, *extra: tuple[str, bytes | None]) -> tuple[bytes, Headers]:
    return codec_for().encode(event), [(h.EVENT_TYPE, event.avro_name.encode()), *extra]


def committed(kafka: str, group: str, topic: str, partition: int = 0) -> int:
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": group, "enable.auto.commit": False})
    try:
        [tp] = consumer.committed([TopicPartition(topic, partition)], timeout=10)
        return tp.offset
    finally:
        consumer.close()


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The worker logs JSON lines, as ``kep run`` does in production (the renderer is part of the path)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    config = structlog.get_config()
    out = io.StringIO()
    configure_logging("json", "INFO", stream=out)
    try:
        yield out
    finally:
        structlog.configure(**config)
        for handler in root.handlers:
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(level)


def test_a_non_utf8_idempotency_key_is_a_key_like_any_other(kafka: str, json_logs: io.StringIO) -> None:
    setup = applied_topology(kafka, partitions=1, delays=(0.2,))
    bad = [order(0), order(1)]
    good = [order(2), order(3)]
    send(
        kafka,
        setup.topic,
        [
            valid(bad[0], (h.IDEMPOTENCY_KEY, b"\xff")),
            valid(bad[1], (h.IDEMPOTENCY_KEY, b"\xff")),  # the same key: a redelivery of the first
            valid(good[0], (h.IDEMPOTENCY_KEY, b"k-\xfe\x00")),
            valid(good[1], (h.IDEMPOTENCY_KEY, good[1].event_id.encode())),
        ],
    )
    app = App(setup.group, topics=[setup.topic])
    seen: list[tuple[str, str]] = []

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        seen.append((event.event_id, ctx.idempotency_key))

    with running(app, setup):
        wait_until(lambda: committed(kafka, setup.group, setup.topic) == 4, timeout=30, message="committed")
    assert [event_id for event_id, _ in seen] == [bad[0].event_id, good[0].event_id, good[1].event_id]
    assert seen[0][1] == "\\xff"  # shown escaped; stored as the exact bytes


@pytest.mark.parametrize("attempt", [b"--1", b"7" * 5000, b"-5", b"99999999999999999999", b"\xd9\xa3"])
def test_a_hostile_attempt_header_on_a_retry_record_counts_from_here(
    kafka: str, json_logs: io.StringIO, attempt: bytes
) -> None:
    setup = applied_topology(kafka, partitions=1, delays=(0.2,))
    [tier] = setup.spec.retry_tiers(setup.topic)
    dlq = setup.spec.dlq_topic(setup.topic)
    assert dlq is not None
    now = str(int(time.time() * 1000)).encode()
    poisoned, behind = order(0), order(1)
    provenance = [
        (h.ORIGINAL_TOPIC, setup.topic.encode()),
        (h.ORIGINAL_PARTITION, b"0"),
        (h.ORIGINAL_OFFSET, b"7"),
        (h.ORIGINAL_TIMESTAMP, now),
        (h.CONSUMER_GROUP, setup.group.encode()),
        (h.FIRST_FAILURE_TIME, now),
        (h.LAST_FAILURE_TIME, now),
        (h.DUE_TIME, now),
    ]
    send(
        kafka,
        tier.topic,
        [
            valid(poisoned, *provenance, (h.ATTEMPT, attempt)),
            valid(behind, *provenance, (h.ATTEMPT, b"1")),
        ],
    )
    app = App(setup.group, topics=[setup.topic])
    runs: list[tuple[str, int]] = []

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        runs.append((event.event_id, ctx.attempt))
        if event.event_id == poisoned.event_id:
            raise Flaky("still failing")

    with running(app, setup):
        [record] = read_records(kafka, dlq, 1, timeout=30)
        wait_until(lambda: committed(kafka, setup.group, tier.topic) >= 2, timeout=30, message="committed")
    assert (behind.event_id, 2) in runs
    assert [a for e, a in runs if e == poisoned.event_id] == [1, 2]  # counted from here: one retry left
    assert h.header_bytes(record.headers(), h.ATTEMPT) == b"2"
    assert h.header_str(record.headers(), h.EXCEPTION_MESSAGE) == "still failing"


def test_a_due_time_centuries_away_waits_no_longer_than_the_tier(kafka: str) -> None:
    setup = applied_topology(kafka, partitions=1, delays=(0.5,))
    [tier] = setup.spec.retry_tiers(setup.topic)
    now = str(int(time.time() * 1000)).encode()
    event = order(0)
    provenance = [
        (h.ORIGINAL_TOPIC, setup.topic.encode()),
        (h.ORIGINAL_PARTITION, b"0"),
        (h.ORIGINAL_OFFSET, b"0"),
        (h.ORIGINAL_TIMESTAMP, now),
        (h.CONSUMER_GROUP, setup.group.encode()),
        (h.ATTEMPT, b"1"),
        (h.FIRST_FAILURE_TIME, now),
        (h.LAST_FAILURE_TIME, now),
        (h.DUE_TIME, b"9999999999999"),  # year 2286
    ]
    send(kafka, tier.topic, [valid(event, *provenance)])
    app = App(setup.group, topics=[setup.topic])
    seen: list[str] = []

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        seen.append(event.event_id)

    with running(app, setup):
        wait_until(lambda: seen, timeout=30, message="the far-future retry ran")
        wait_until(lambda: committed(kafka, setup.group, tier.topic) == 1, timeout=30, message="committed")
    assert seen == [event.event_id]


def _big_topology(kafka: str, *, dlq_limit: int) -> Setup:
    """One partition, source topic taking 3 MB records; the dead-letter topic's limit as given."""
    topic, group = unique("orders"), unique("grp")
    retry = RetrySpec(delays=("200ms",))
    topology = Topology(
        topics=(
            TopicSpec(
                name=topic,
                partitions=1,
                value_schema="kep.orders.OrderPlaced",
                configs={"max.message.bytes": "3000000"},
            ),
        ),
        groups=(ConsumerGroupSpec(name=group, topics=(topic,), retry=retry),),
        dead_letter_topic_configs={"max.message.bytes": str(dlq_limit)},
    )
    kafka_settings = KafkaSettings(bootstrap_servers=kafka)
    admin.apply(admin.plan(topology, kafka_settings), kafka_settings)
    return Setup(kafka_settings, topology, topic, group)


def test_a_failing_record_too_large_to_forward_is_dead_lettered_truncated(kafka: str) -> None:
    setup = _big_topology(kafka, dlq_limit=1_000_000)
    dlq = setup.spec.dlq_topic(setup.topic)
    assert dlq is not None
    huge = b"\x00not avro" + b"x" * 1_500_000  # undecodable: fatal, straight to the dead-letter topic
    after = order(1)
    send(
        kafka,
        setup.topic,
        [(huge, [("custom", b"kept")]), valid(after)],
        **{"message.max.bytes": 5_000_000},
    )
    app = App(setup.group, topics=[setup.topic])
    seen: list[str] = []

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        seen.append(event.event_id)

    with running(app, setup):
        [record] = read_records(kafka, dlq, 1, timeout=30)
        wait_until(lambda: committed(kafka, setup.group, setup.topic) == 2, timeout=30, message="committed")
    assert seen == [after.event_id]
    value = record.value()
    assert value is not None and len(value) < 1_000_000 and huge.startswith(value)
    headers = record.headers()
    assert h.header_str(headers, h.TRUNCATED) == str(len(huge))
    assert h.header_str(headers, h.EXCEPTION_TYPE) == "kep.schemas.errors.DecodeError"
    assert "max.message.bytes" in (h.header_str(headers, h.FORWARD_ERROR) or "")
    assert h.header_str(headers, "custom") == "kept"
    # the producer may write the small record first: the huge one's offset is read back, not assumed
    sent = read_records(kafka, setup.topic, 2, timeout=30)
    [huge_at] = [m.offset() for m in sent if (m.value() or b"").startswith(b"\x00not avro")]
    assert h.header_int(headers, h.ORIGINAL_OFFSET) == huge_at


def test_the_forwarding_limit_is_the_destination_topics(kafka: str) -> None:
    setup = _big_topology(kafka, dlq_limit=4_000_000)
    dlq = setup.spec.dlq_topic(setup.topic)
    assert dlq is not None
    huge = b"\x00not avro" + b"y" * 1_500_000
    send(kafka, setup.topic, [(huge, [])], **{"message.max.bytes": 5_000_000})
    app = App(setup.group, topics=[setup.topic])
    app.handler(setup.topic)(lambda event, ctx: None)
    with running(app, setup):
        [record] = read_records(kafka, dlq, 1, timeout=30)
        wait_until(lambda: committed(kafka, setup.group, setup.topic) == 1, timeout=30, message="committed")
    assert record.value() == huge
    assert h.header_bytes(record.headers(), h.TRUNCATED) is None


def test_postgres_store_takes_keys_with_nul_and_of_any_length(kafka: str) -> None:
    dsn = require_postgres()
    setup = applied_topology(kafka, partitions=1, delays=(0.2,))
    events = [order(i) for i in range(4)]
    keys = [b"a\x00b", b"k" * 3000, b"\xff" * 10_000, events[3].event_id.encode()]
    send(kafka, setup.topic, [valid(e, (h.IDEMPOTENCY_KEY, k)) for e, k in zip(events, keys, strict=True)])
    app = App(setup.group, topics=[setup.topic])
    seen: list[str] = []

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        seen.append(event.event_id)

    with running(app, setup, idempotency_store=dsn):
        wait_until(lambda: committed(kafka, setup.group, setup.topic) == 4, timeout=30, message="committed")
    assert seen == [e.event_id for e in events]


class RefusingStore(MemoryStore):
    """Refuses one key with an error that is not "store unavailable": a store bug about this record."""

    refused = b""

    def claim(self, key: Key) -> ClaimState:
        if key_bytes(key) == self.refused:
            raise ValueError("this key cannot be stored")
        return super().claim(key)


@pytest.mark.parametrize("step", ["key", "store", "routing", "log"])
def test_a_failure_at_any_step_dead_letters_the_record_and_the_partition_moves_on(
    kafka: str, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    setup = applied_topology(kafka, partitions=1, delays=(0.2,), fatal=["builtins.LookupError"])
    dlq = setup.spec.dlq_topic(setup.topic)
    assert dlq is not None
    poisoned, good = order(0), order(1)
    send(
        kafka,
        setup.topic,
        [valid(poisoned, (h.IDEMPOTENCY_KEY, b"poison")), valid(good, (h.IDEMPOTENCY_KEY, b"good"))],
    )
    app = App(setup.group, topics=[setup.topic], idempotency_key="field:nope" if step == "key" else "header")
    seen: list[str] = []

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        if event.event_id == poisoned.event_id:
            raise LookupError("a fatal failure of the handler")
        seen.append(event.event_id)

    expected = {
        "key": "kep.consumers.errors.RecordError",
        "store": "kep.consumers.errors.RecordError",
        "routing": "builtins.LookupError",
        "log": "builtins.LookupError",
    }[step]
    store = RefusingStore(setup.group, ttl_s=60, lease_s=60)
    if step == "store":
        store.refused = b"poison"
    if step == "routing":
        monkeypatch.setattr(Provenance, "first_failure", classmethod(lambda cls, **kw: 1 / 0))
    if step == "log":

        class Broken:
            def __getattr__(self, name: str) -> Any:
                def fail(*args: Any, **kwargs: Any) -> None:
                    raise OSError("the log sink is gone")

                return fail

        monkeypatch.setattr(processor_module, "log", Broken())
        monkeypatch.setattr(settle_module, "log", Broken())
    worker = build_worker(app, settings(), setup.kafka, topology=setup.topology, store=store, probe=False)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        # with field:nope neither record has its key: both are dead-lettered
        record, *_ = read_records(kafka, dlq, 2 if step == "key" else 1, timeout=30)
        wait_until(lambda: committed(kafka, setup.group, setup.topic) == 2, timeout=30, message="committed")
    finally:
        worker.stop()
        thread.join(30)
    assert h.header_str(record.headers(), h.EXCEPTION_TYPE) == expected
    assert record.value() == valid(poisoned)[0]
    if step != "key":
        assert seen == [good.event_id]
