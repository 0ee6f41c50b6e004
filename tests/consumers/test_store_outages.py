"""The store's connections are reset again and again while events flow: nothing lost, nothing twice, nothing
dead-lettered because of the store.

The worker reaches PostgreSQL or Redis through a proxy the test owns; a thread aborts every open connection
every 50-200 ms. Each handler writes its effect in the store's own transaction (``ctx.transaction()``), so the
effects table (or list) is the ground truth: one row per event, exactly.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from confluent_kafka import Consumer, TopicPartition

from kep.consumers.app import App
from kep.consumers.context import MessageContext
from shop.orders import OrderPlaced
from tests.support.kafka import read_records
from tests.support.proxy import ResettingProxy
from tests.support.runtime import Setup, applied_topology, produce_orders, running
from tests.support.services import require_postgres, require_redis
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 600


def through(url: str, proxy: ResettingProxy) -> str:
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}"))


@pytest.fixture(params=["postgres", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, Any]]:
    """``(kind, direct url, effects reader)``; the effects table or list is dropped afterwards."""
    name = f"effects_{uuid.uuid4().hex[:10]}"
    if request.param == "postgres":
        import psycopg

        dsn = require_postgres()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE {name} (event_id text NOT NULL)")

        def read() -> tuple[int, int]:
            with psycopg.connect(dsn, autocommit=True) as conn:
                row = conn.execute(f"SELECT count(*), count(DISTINCT event_id) FROM {name}").fetchone()
            assert row is not None
            return int(row[0]), int(row[1])

        yield "postgres", dsn, (name, read)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE {name}")
    else:
        import redis

        url = require_redis()
        client = redis.Redis.from_url(url)

        def read() -> tuple[int, int]:
            values = client.lrange(name, 0, -1)
            return len(values), len(set(values))

        yield "redis", url, (name, read)
        client.delete(name)
        client.close()


def committed_total(setup: Setup) -> int:
    consumer = Consumer({"bootstrap.servers": setup.kafka.bootstrap_servers, "group.id": setup.group})
    try:
        partitions = [TopicPartition(setup.topic, p) for p in range(3)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(partitions, timeout=10))
    finally:
        consumer.close()


def test_store_connections_reset_under_load_lose_and_duplicate_nothing(
    kafka: str, backend: tuple[str, str, Any]
) -> None:
    kind, url, (table, effects) = backend
    setup = applied_topology(kafka, partitions=3, delays=(0.2,))
    events = produce_orders(setup, EVENTS)
    app = App(setup.group, topics=[setup.topic])
    runs: list[str] = []

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        runs.append(event.event_id)
        with ctx.transaction() as tx:
            time.sleep(0.005)  # sleep-ok: the handler's own work, so that resets land inside transactions
            if kind == "postgres":
                tx.execute(f"INSERT INTO {table} (event_id) VALUES (%s)", (event.event_id,))
            else:
                tx.rpush(table, event.event_id)

    stop = threading.Event()
    with ResettingProxy(urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port or 0) as proxy:

        def chaos() -> None:
            rng = random.Random(7)
            while not stop.wait(rng.uniform(0.05, 0.2)):  # the interval between deliberate outages
                proxy.reset()

        breaker = threading.Thread(target=chaos, name="chaos", daemon=True)
        with running(app, setup, idempotency_store=through(url, proxy), max_in_flight=200):
            breaker.start()
            try:
                wait_until(
                    lambda: effects()[1] == EVENTS, timeout=180, interval=0.5, message="every event's effect"
                )
            finally:
                stop.set()
                breaker.join(5)
            wait_until(lambda: committed_total(setup) == EVENTS, timeout=60, message="all committed")
        resets = proxy.resets
    assert effects() == (EVENTS, EVENTS), "an effect is missing or was applied twice"
    assert sorted(set(runs)) == sorted(e.event_id for e in events)
    dlq = setup.spec.dlq_topic(setup.topic)
    assert dlq is not None
    assert read_records(kafka, dlq, 1, timeout=2) == [], "dead-lettered because of the store"
    assert resets >= 5, f"only {resets} resets: the outages did not happen"
    assert len(runs) > EVENTS, "no handler run was interrupted: the test proved nothing"
