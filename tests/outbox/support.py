"""Helpers of the outbox tests: a topology with a source and a follow-up topic, SQL databases, a reader."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from kep.topology import admin
from kep.topology.model import ConsumerGroupSpec, RetrySpec, TopicSpec, Topology
from kep.topology.settings import KafkaSettings
from tests.support.kafka import unique
from tests.support.services import require_postgres


@dataclass(frozen=True)
class OutboxSetup:
    kafka: KafkaSettings
    topology: Topology
    topic: str  # OrderPlaced, the source
    follow: str  # PaymentCaptured, the follow-up events
    group: str


def outbox_topology(bootstrap: str, *, partitions: int = 3) -> OutboxSetup:
    topic, follow, group = unique("orders"), unique("payments"), unique("grp")
    topology = Topology(
        topics=(
            TopicSpec(
                name=topic, partitions=partitions, value_schema="kep.orders.OrderPlaced", key_field="order_id"
            ),
            TopicSpec(
                name=follow,
                partitions=partitions,
                value_schema="kep.orders.PaymentCaptured",
                key_field="order_id",
            ),
        ),
        groups=(ConsumerGroupSpec(name=group, topics=(topic,), retry=RetrySpec(delays=("1s",))),),
    )
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    admin.apply(admin.plan(topology, kafka), kafka)
    return OutboxSetup(kafka, topology, topic, follow, group)


@dataclass
class Database:
    """An SQL database for a test: its URL (the idempotency store's), a connection and a unique table name."""

    kind: str
    url: str
    conn: Any
    table: str
    effects: str

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self.kind == "postgres":
            sql = sql.replace("?", "%s")
        return [tuple(r) for r in self.conn.execute(sql, params).fetchall()]

    def count(self, sql: str, *params: Any) -> int:
        return int(self.rows(sql, *params)[0][0])


def open_database(kind: str, tmp_path: Path) -> Iterator[Database]:
    table, effects = f"outbox_{uuid.uuid4().hex[:8]}", f"effects_{uuid.uuid4().hex[:8]}"
    if kind == "sqlite":
        path = tmp_path / "service.db"
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"CREATE TABLE {effects} (event_id TEXT NOT NULL)")
        yield Database(kind, f"sqlite:///{path}", conn, table, effects)
        conn.close()
        return
    import psycopg

    dsn = require_postgres()
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute(f"CREATE TABLE {effects} (event_id text NOT NULL)")
    yield Database(kind, dsn, conn, table, effects)
    conn.execute(f"DROP TABLE IF EXISTS {effects}")
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute("DELETE FROM kep_outbox_relay WHERE outbox = %s", (table,))
    conn.close()


def read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0) -> list[Any]:
    """Every record of ``topic`` (read_committed), once ``expected`` arrived and the end of every partition
    was reached: more than ``expected`` would be seen too."""
    import time

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("reader"),
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 50,
        }
    )
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
    records: list[Any] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                    if len(records) >= expected and at_end >= set(metadata.partitions):
                        break
                continue
            at_end.discard(msg.partition())
            records.append(msg)
    finally:
        consumer.close()
    return records
