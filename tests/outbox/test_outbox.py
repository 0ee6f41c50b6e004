"""The transactional outbox on SQLite and PostgreSQL with a real broker: ``Outbox(conn)`` in a service's
transaction, ``ctx.publish`` in a handler's, and the relay publishing in order, exactly once, with the causation
id and trace context of the handled message."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kep.consumers.app import App
from kep.consumers.context import MessageContext
from kep.producers import headers as h
from kep.producers.errors import OutboxError
from kep.producers.outbox import Outbox, OutboxRelay, OutboxSettings
from kep.producers.producer import EventProducer
from kep.schemas.codec import codec_for
from kep.topology.loader import schema_registry
from shop.orders import OrderPlaced, PaymentCaptured
from shop.samples import sample_events
from tests.apps.outbox import payment_for
from tests.outbox.support import Database, OutboxSetup, open_database, outbox_topology, read_topic
from tests.support.runtime import running
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    yield from open_database(request.param, tmp_path)


@contextlib.contextmanager
def service_transaction(db: Database) -> Iterator[Any]:
    """The service's own transaction on its own connection."""
    if db.kind == "sqlite":
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            yield db.conn
        except BaseException:
            db.conn.execute("ROLLBACK")
            raise
        db.conn.execute("COMMIT")
    else:
        with db.conn.transaction():
            yield db.conn


def orders(n: int, seed: int = 0) -> list[OrderPlaced]:
    return [e for e in sample_events(n, seed=seed, kind="orders") if isinstance(e, OrderPlaced)]


def relay_all(
    db: Database, setup: OutboxSetup, *, batch_size: int = 500, exactly_once: bool | None = None
) -> int:
    """Publish every unsent row; at least once on the embedded broker (as ``delivery: auto`` chooses)."""
    if exactly_once is None:
        exactly_once = os.environ.get("KEP_TEST_KAFKA_KIND") != "embedded"
    settings = OutboxSettings(table=db.table, batch_size=batch_size)
    relay = OutboxRelay(db.url, setup.kafka, settings, exactly_once=exactly_once)
    try:
        return relay.drain()
    finally:
        relay.close()


def decode(setup: OutboxSetup, records: list[Any]) -> list[Any]:
    codec = codec_for(registry=schema_registry(setup.topology))
    return [codec.decode(r.value()) for r in records]


class Rollback(Exception):
    pass


@pytest.mark.embedded
def test_outbox_in_a_service_transaction_is_published_once_if_and_only_if_it_commits(
    kafka: str, db: Database
) -> None:
    setup = outbox_topology(kafka)
    Outbox(db.conn, setup.topology, table=db.table).create_table()
    kept, dropped = (payment_for(order) for order in orders(2))
    with service_transaction(db) as conn:
        conn.execute(f"INSERT INTO {db.effects} (event_id) VALUES ('{kept.event_id}')")
        outbox_id = Outbox(conn, setup.topology, table=db.table).publish(kept, traceparent=TRACEPARENT)
    with pytest.raises(Rollback), service_transaction(db) as conn:
        conn.execute(f"INSERT INTO {db.effects} (event_id) VALUES ('{dropped.event_id}')")
        Outbox(conn, setup.topology, table=db.table).publish(dropped)
        raise Rollback
    assert db.rows(f"SELECT id, event_id FROM {db.table}") == [(outbox_id, kept.event_id)]
    assert db.count(f"SELECT count(*) FROM {db.effects}") == 1

    assert relay_all(db, setup) == 1
    records = read_topic(kafka, setup.follow, 1)
    assert len(records) == 1
    record = records[0]
    assert record.key() == kept.order_id.encode()
    assert decode(setup, records) == [kept]
    headers = record.headers()
    assert h.header_str(headers, h.IDEMPOTENCY_KEY) == kept.event_id
    assert h.header_str(headers, h.EVENT_TYPE) == "kep.orders.PaymentCaptured"
    assert h.header_str(headers, h.TRACEPARENT) == TRACEPARENT
    assert db.count(f"SELECT count(*) FROM {db.table} WHERE sent_at IS NULL") == 0
    assert relay_all(db, setup) == 0, "a sent row was published again"


@pytest.mark.embedded
@pytest.mark.parametrize("exactly_once", [True, False], ids=["exactly-once", "at-least-once"])
def test_the_relay_publishes_each_row_once_in_id_order_per_key(
    kafka: str, kafka_kind: str, db: Database, exactly_once: bool
) -> None:
    if exactly_once and kafka_kind == "embedded":
        pytest.skip("the embedded broker shows aborted transactions: at least once there")
    setup = outbox_topology(kafka, partitions=2)
    Outbox(db.conn, setup.topology, table=db.table).create_table()
    keys = [f"order-{k}" for k in range(5)]
    written: dict[str, list[str]] = defaultdict(list)
    template = payment_for(orders(1)[0])
    for i in range(200):
        key = keys[(i * 7) % len(keys)]
        event = template.model_copy(update={"event_id": str(uuid.uuid4()), "order_id": key})
        with service_transaction(db) as conn:
            Outbox(conn, setup.topology, table=db.table).publish(event)
        written[key].append(event.event_id)

    assert relay_all(db, setup, batch_size=7, exactly_once=exactly_once) == 200  # 29 batches
    records = read_topic(kafka, setup.follow, 200)
    seen: dict[str, list[str]] = defaultdict(list)
    for record in records:
        seen[record.key().decode()].append(h.header_str(record.headers(), h.IDEMPOTENCY_KEY) or "")
    assert len(records) == 200
    assert seen == written


def test_ctx_publish_commits_with_the_handlers_writes_and_key_and_carries_causation_and_trace(
    kafka: str, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEP_OUTBOX_TABLE", db.table)
    setup = outbox_topology(kafka)
    app = App(setup.group, topics=[setup.topic])
    sources = orders(40)
    to_fail = {order.event_id for order in sources[::2]}
    failed_once: set[str] = set()

    @app.handler(setup.topic)
    def handle(order: OrderPlaced, ctx: MessageContext) -> None:
        with ctx.transaction() as tx:
            tx.execute(f"INSERT INTO {db.effects} (event_id) VALUES ('{order.event_id}')")
            ctx.publish(payment_for(order))
            if order.event_id in to_fail and order.event_id not in failed_once:
                failed_once.add(order.event_id)  # after ctx.publish: its row must roll back with the rest
                raise Rollback(order.event_id)

    with EventProducer(setup.kafka, setup.topology) as producer:
        for order in sources:
            producer.publish(order, topic=setup.topic, traceparent=TRACEPARENT)
        assert producer.flush(30) == 0
    with running(app, setup, idempotency_store=db.url):  # type: ignore[arg-type]
        wait_until(
            lambda: db.count(f"SELECT count(*) FROM {db.effects}") >= len(sources),
            timeout=60,
            message="every order handled",
        )
        # the same orders again: their idempotency keys are done, so nothing is written or published twice
        with EventProducer(setup.kafka, setup.topology) as producer:
            for order in sources[:10]:
                producer.publish(order, topic=setup.topic)
        wait_until(lambda: _committed(setup) >= len(sources) + 10, timeout=60, message="redeliveries handled")
    assert failed_once, "no handler run failed after ctx.publish: the rollback was not exercised"
    rows = db.rows(f"SELECT event_id FROM {db.table}")
    assert sorted(r[0] for r in rows) == sorted(payment_for(o).event_id for o in sources)
    assert db.count(f"SELECT count(*) FROM {db.effects}") == len(sources)

    assert relay_all(db, setup) == len(sources)
    records = read_topic(kafka, setup.follow, len(sources))
    assert len(records) == len(sources)
    by_payment = {payment_for(o).event_id: o for o in sources}
    for record in records:
        headers = record.headers()
        source = by_payment[h.header_str(headers, h.IDEMPOTENCY_KEY) or ""]
        assert h.header_str(headers, h.CAUSATION_ID) == source.event_id
        assert h.header_str(headers, h.TRACEPARENT) == TRACEPARENT
        assert record.key() == source.order_id.encode()
    assert all(isinstance(e, PaymentCaptured) for e in decode(setup, records))


def _committed(setup: OutboxSetup) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": setup.kafka.bootstrap_servers, "group.id": setup.group})
    try:
        parts = [TopicPartition(setup.topic, p) for p in range(3)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=10))
    finally:
        consumer.close()


def test_ctx_publish_outside_the_transaction_or_on_a_store_without_sql_is_a_clear_error(
    kafka: str, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEP_OUTBOX_TABLE", db.table)
    setup = outbox_topology(kafka, partitions=1)
    errors: list[str] = []
    app = App(setup.group, topics=[setup.topic])

    @app.handler(setup.topic)
    def handle(order: OrderPlaced, ctx: MessageContext) -> None:
        try:
            ctx.publish(payment_for(order))
        except OutboxError as exc:
            errors.append(str(exc))

    with EventProducer(setup.kafka, setup.topology) as producer:
        producer.publish_and_wait(orders(1)[0], topic=setup.topic)
    with running(app, setup, idempotency_store=db.url):  # type: ignore[arg-type]
        wait_until(lambda: errors, timeout=60, message="the handler ran")
    assert "inside `with ctx.transaction()" in errors[0]

    setup = outbox_topology(kafka, partitions=1)
    app = App(setup.group, topics=[setup.topic])
    app.handler(setup.topic)(handle)
    with EventProducer(setup.kafka, setup.topology) as producer:
        producer.publish_and_wait(orders(1)[0], topic=setup.topic)
    with running(app, setup, idempotency_store="memory://"):  # type: ignore[arg-type]
        wait_until(lambda: len(errors) == 2, timeout=60, message="the handler ran on a memory store")
    assert "needs an SQL idempotency store" in errors[1] and "memory://" in errors[1]
    assert db.count(f"SELECT count(*) FROM {db.table}") == 0
