"""Three workers of one group, one of them killed with SIGKILL every few seconds and restarted: every event is
handled, and its side effect, written in the idempotency store's transaction, exists exactly once."""

from __future__ import annotations

import random
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.processes import effects_worker
from tests.support.runtime import applied_topology, produce_orders
from tests.support.services import require_postgres, require_redis
from tests.support.wait import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.integration]

EVENTS = 20_000
PARTITIONS = 6
KILLS = 4

Counter = Callable[[], tuple[int, int]]  # (rows, distinct event ids)


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, Counter]]:
    """(store url, effects name, counter of the side-effect rows)."""
    effects = f"effects_{uuid.uuid4().hex[:8]}"
    if request.param == "sqlite":
        db = tmp_path / "idem.db"

        def count_sqlite() -> tuple[int, int]:
            conn = sqlite3.connect(db, timeout=30)
            try:
                row = conn.execute(f"SELECT count(*), count(DISTINCT event_id) FROM {effects}").fetchone()
                return int(row[0]), int(row[1])
            except sqlite3.OperationalError:  # the first worker has not created the table yet
                return 0, 0
            finally:
                conn.close()

        yield f"sqlite:///{db}", effects, count_sqlite
    elif request.param == "redis":
        import redis

        url = require_redis()
        client = redis.Redis.from_url(url)

        def count_redis() -> tuple[int, int]:
            rows = client.lrange(effects, 0, -1)
            return len(rows), len(set(rows))

        yield url, effects, count_redis
        client.delete(effects)
        client.close()
    else:
        import psycopg

        dsn = require_postgres()
        conn = psycopg.connect(dsn, autocommit=True)
        conn.execute(f"CREATE TABLE {effects} (event_id text NOT NULL, pid int)")

        def count_pg() -> tuple[int, int]:
            row = conn.execute(f"SELECT count(*), count(DISTINCT event_id) FROM {effects}").fetchone()
            assert row is not None
            return int(row[0]), int(row[1])

        yield dsn, effects, count_pg
        conn.execute(f"DROP TABLE {effects}")
        conn.close()


def test_kill9_every_few_seconds_loses_nothing_and_applies_each_effect_once(
    kafka: str, tmp_path: Path, store: tuple[str, str, Counter]
) -> None:
    url, effects, count = store
    setup = applied_topology(kafka, partitions=PARTITIONS)
    produce_orders(setup, EVENTS)
    env = {"KEP_TEST_EFFECTS": effects, "KEP_TEST_HANDLER_MS": 3, "KEP_IDEMPOTENCY_STORE": url}
    env["KEP_IDEMPOTENCY_LEASE_S"] = 5
    workers = [effects_worker(setup, tmp_path, f"worker-{i}", **env).start() for i in range(3)]
    rng = random.Random(7)
    kills = 0
    try:
        while kills < KILLS and count()[1] < EVENTS:
            next_kill = time.monotonic() + rng.uniform(2.0, 4.0)
            wait_until(
                lambda t=next_kill: time.monotonic() >= t or count()[1] >= EVENTS,  # type: ignore[misc]
                timeout=10,
                interval=0.2,
                message="next kill",
            )
            if count()[1] >= EVENTS:
                break
            victim = rng.choice(workers)
            victim.kill9()
            victim.start()
            kills += 1
        wait_until(lambda: count()[1] >= EVENTS, timeout=240, interval=0.5, message=f"{EVENTS} effects")
    finally:
        codes = [w.terminate(60) for w in workers]
    rows, distinct = count()
    assert kills >= 1, "the stream finished before any worker was killed: make the handler slower"
    assert distinct == EVENTS, "some events were never handled"
    assert rows == EVENTS, f"{rows - EVENTS} side effects were applied twice"
    assert codes == [0, 0, 0], [w.log() for w in workers]
