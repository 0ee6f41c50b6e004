"""The status stores (memory, SQLite, Redis, PostgreSQL) keep the same promises."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kep.consumers.errors import ConfigError
from kep.consumers.idempotency.base import ClaimState
from kep.consumers.idempotency.sqlite import SqliteStore
from kep.consumers.status import EventStatus, StatusStore, StatusView, open_status_store
from kep.consumers.status.sql import SqlStatusStore, events_path
from tests.support.services import require_postgres, require_redis


@pytest.fixture(params=["memory", "sqlite", "redis", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StatusStore]:
    url = {
        "memory": lambda: "memory://",
        "sqlite": lambda: f"sqlite:///{tmp_path / 'status.db'}",
        "redis": require_redis,
        "postgres": require_postgres,
    }[request.param]()
    opened = open_status_store(url, ttl_s=60)
    yield opened
    opened.close()


def _id() -> str:
    return f"e-{uuid.uuid4().hex[:12]}"


def test_the_newest_state_wins_whatever_the_write_order(store: StatusStore) -> None:
    event = _id()
    handled = EventStatus(event, "billing", "handled", 2000, "orders", attempt=2)
    retrying = EventStatus(
        event, "billing", "retrying", 1000, "orders", tier="1s", due_ms=2000, exception_type="X"
    )
    other_group = EventStatus(event, "shipping", "processing", 1500, "orders")
    store.put_events([handled, other_group])
    store.put_events([retrying])  # older: ignored
    found = {s.group: s for s in store.events(event)}
    assert found == {"billing": handled, "shipping": other_group}
    assert store.events(_id()) == []


def test_a_member_counts_once_and_moves_between_final_states(store: StatusStore) -> None:
    batch = _id()
    store.record_member("g", batch, 3, "a", "handled", 1)
    store.record_member("g", batch, 3, "a", "handled", 2)  # a redelivery
    progress = store.record_member("g", batch, 3, "b", "dead_lettered", 3)
    assert (progress.handled, progress.dead_lettered, progress.pending, progress.finished) == (1, 1, 1, False)
    progress = store.record_member("g", batch, 3, "c", "handled", 4)
    assert progress.finished and progress.state == "completed_with_dead_letters"
    assert store.dead_members("g", batch) == ["b"]
    store.mark_announced("g", batch, 5)
    progress = store.record_member("g", batch, 3, "b", "handled", 6)  # replayed after a fix
    assert (progress.handled, progress.dead_lettered, progress.state) == (3, 0, "completed")
    assert progress.announced_ms == 5
    assert store.dead_members("g", batch) == []
    other = store.record_member("h", batch, 3, "a", "handled", 7)
    assert (other.handled, other.finished) == (1, False)
    assert {p.group for p in store.batches(batch)} == {"g", "h"}


def test_concurrent_counts_of_the_same_members_add_up(store: StatusStore) -> None:
    batch = _id()
    members = [f"m{i}" for i in range(40)]

    def count(member: str) -> None:
        store.record_member("g", batch, len(members), member, "handled", 1)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(count, members * 3))  # every member three times, in parallel
    [progress] = store.batches(batch)
    assert (progress.handled, progress.finished) == (40, True)


def test_the_view_is_plain_json_ready_dicts(store: StatusStore) -> None:
    event, batch = _id(), _id()
    store.put_events(
        [EventStatus(event, "g", "dead_lettered", 9, "orders", 4, exception_type="E", reason="fatal")]
    )
    store.record_member("g", batch, 2, event, "dead_lettered", 9)
    view = StatusView(store)
    assert view.event_status(event) == {
        "event_id": event,
        "groups": {"g": {"state": "dead_lettered", "at_ms": 9, "topic": "orders", "attempt": 4,
                         "exception_type": "E", "reason": "fatal"}},
    }  # fmt: skip
    status = view.batch_status(batch)
    assert status is not None
    assert status["groups"]["g"]["dead_lettered_ids"] == [event]
    assert status["groups"]["g"]["pending"] == 1 and status["groups"]["g"]["state"] == "running"
    assert view.batch_status(_id()) is None and view.event_status(_id()) is None


def test_unknown_schemes_are_refused_without_credentials() -> None:
    with pytest.raises(ConfigError, match="unknown scheme 'mysql'") as caught:
        open_status_store("mysql://user:secret@db/x")
    assert "secret" not in str(caught.value)


@pytest.mark.unit
def test_the_memory_status_store_is_bounded_and_forgets_the_oldest() -> None:
    from kep.consumers.status.store import MemoryStatusStore

    store = MemoryStatusStore(ttl_s=60, max_events=100)
    for batch in range(10):
        store.put_events([EventStatus(f"e{batch * 50 + i}", "g", "handled", i, "orders") for i in range(50)])
    kept = [f"e{i}" for i in range(500) if store.events(f"e{i}")]
    assert 0 < len(kept) <= 100
    assert kept[-1] == "e499" and not store.events("e0")


def test_sqlite_event_states_have_a_file_of_their_own(tmp_path: Path) -> None:
    """A status write of thousands of rows holds its file's lock for tens of milliseconds: the lanes' claims and
    completions, on the idempotency file, must not wait behind it."""
    path = tmp_path / "idempotency.db"
    status = open_status_store(f"sqlite:///{path}", ttl_s=60)
    keys = SqliteStore(path, "g", ttl_s=60, lease_s=30)
    try:
        status.put_events([EventStatus("e1", "g", "handled", 1, "orders")])
        assert events_path(path) == tmp_path / "idempotency-status.db"
        with sqlite3.connect(events_path(path)) as conn:
            assert conn.execute("SELECT count(*) FROM kep_event_status").fetchone() == (1,)
        with sqlite3.connect(path) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "kep_event_status" not in tables and "kep_batch" in tables
        assert isinstance(status, SqlStatusStore)
        held, done = threading.Event(), threading.Event()

        def long_status_write() -> None:
            with status._cursor(transaction=True, events=True):  # a status write in progress
                held.set()
                done.wait(30)

        writer = threading.Thread(target=long_status_write)
        writer.start()
        try:
            assert held.wait(10)
            answers: list[ClaimState] = []
            lane = threading.Thread(target=lambda: answers.extend(keys.claim_many(["k1", "k2"])))
            lane.start()
            lane.join(10)  # a deadline, not a pause: it returns as soon as the claims are stored
            assert answers == [ClaimState.NEW, ClaimState.NEW], "a claim waited behind a status write"
        finally:
            done.set()
            writer.join(10)
    finally:
        keys.close()
        status.close()


def test_sqlite_states_an_earlier_kep_wrote_beside_the_keys_are_still_read(tmp_path: Path) -> None:
    path = tmp_path / "idempotency.db"
    old = EventStatus("e1", "billing", "retrying", 1000, "orders", tier="1s", due_ms=2000)
    with sqlite3.connect(path) as conn:  # the table as kep kept it in the idempotency file before
        conn.execute(
            "CREATE TABLE kep_event_status (event_id TEXT NOT NULL, grp TEXT NOT NULL, at_ms BIGINT NOT NULL, "
            "expires_at DOUBLE PRECISION NOT NULL, record TEXT NOT NULL, PRIMARY KEY (event_id, grp))"
        )
        conn.execute(
            "INSERT INTO kep_event_status VALUES (?, ?, ?, ?, ?)",
            ("e1", "billing", 1000, 4e9, old.to_json().decode()),
        )
    store = open_status_store(f"sqlite:///{path}", ttl_s=60)
    try:
        assert store.events("e1") == [old]
        handled = EventStatus("e1", "billing", "handled", 3000, "orders", attempt=2)
        store.put_events([handled])  # into the file of their own: the newer record wins
        assert store.events("e1") == [handled]
    finally:
        store.close()
