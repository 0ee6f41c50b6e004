"""SQLite writes that wait together share one transaction (``SqliteFile.write``): several lanes completing keys
at once cost one commit; a write that fails takes the others of its transaction with it, and nothing of them
is committed; each caller still gets its own answer."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from kep.consumers.errors import IdempotencyStoreError
from kep.consumers.idempotency import _sqlite_writes
from kep.consumers.idempotency.base import ClaimState
from kep.consumers.idempotency.sqlite import SqliteStore
from tests.support.wait import wait_until

pytestmark = pytest.mark.unit


def _queued(store: SqliteStore, count: int) -> None:
    file = store._file
    assert file is not None
    wait_until(lambda: len(file._queued) >= count, timeout=10, message=f"{count} writes queued")


def _threads(*targets: object) -> list[threading.Thread]:
    threads = [threading.Thread(target=t, daemon=True) for t in targets]  # type: ignore[arg-type]
    for thread in threads:
        thread.start()
    return threads


def test_writers_that_wait_together_are_committed_in_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqliteStore(tmp_path / "keys.db", "group", ttl_s=60, lease_s=30)
    transactions: list[int] = []
    run = _sqlite_writes._run
    monkeypatch.setattr(
        _sqlite_writes, "_run", lambda conn, writes: (transactions.append(len(writes)), run(conn, writes))
    )
    answers: dict[str, object] = {}
    keys = [f"k{i}" for i in range(4)]
    try:
        assert store._file is not None
        with store._file.lock.threads:  # a write under way: the others queue behind it
            threads = _threads(
                lambda: answers.update(claim=store.claim_many(keys[:2])),
                lambda: store.settle_many([keys[2]], []),
                lambda: answers.update(single=store.claim(keys[3])),
            )
            _queued(store, 3)
        for thread in threads:
            thread.join(10)
        assert transactions == [3]  # one transaction, one commit, for the three callers
        assert answers == {"claim": [ClaimState.NEW, ClaimState.NEW], "single": ClaimState.NEW}
        assert store.claim(keys[2]) is ClaimState.DONE  # committed
        assert store.claim_many(keys[:2]) == [ClaimState.NEW, ClaimState.NEW]  # our own claims, still held
    finally:
        store.close()


def test_a_write_that_fails_fails_its_transaction_and_commits_none_of_it(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "keys.db", "group", ttl_s=60, lease_s=30)
    file = store._file
    assert file is not None
    errors: dict[str, BaseException] = {}

    def broken() -> None:
        try:
            file.write(store._conn(), lambda conn: conn.execute("INSERT INTO no_such_table VALUES (1)"))
        except sqlite3.Error as exc:
            errors["broken"] = exc

    def complete() -> None:
        try:
            store.settle_many(["kept"], [])
        except IdempotencyStoreError as exc:
            errors["complete"] = exc

    try:
        with store._file.lock.threads:
            threads = _threads(broken, complete)
            _queued(store, 2)
        for thread in threads:
            thread.join(10)
        assert "no such table" in str(errors["broken"])  # its own error
        assert "a write in the same transaction failed" in str(errors["complete"])  # named, not silent
        assert "no such table" in str(errors["complete"])
        assert store.claim("kept") is ClaimState.NEW  # rolled back: not completed
        store.settle_many(["kept"], [])  # the store works on
        assert store.claim("kept") is ClaimState.DONE
    finally:
        store.close()


def test_a_write_inside_a_transaction_of_its_own_thread_runs_alone(tmp_path: Path) -> None:
    """``ctx.transaction()`` holds the lock on this thread: a write there must not take other threads' writes
    into a transaction it cannot begin; theirs run after it, committed."""
    store = SqliteStore(tmp_path / "keys.db", "group", ttl_s=60, lease_s=30)
    assert store.claim("handled") is ClaimState.NEW
    done = threading.Event()
    try:
        with store.transaction("handled"):
            thread = _threads(lambda: (store.settle_many(["other"], []), done.set()))[0]
            _queued(store, 1)
            with pytest.raises(IdempotencyStoreError):
                store.claim("nested")  # a transaction within a transaction, as before: an error of its own
        thread.join(10)
        assert done.is_set()
        assert store.claim("other") is ClaimState.DONE
        assert store.claim("handled") is ClaimState.DONE
    finally:
        store.close()


def test_when_the_file_lock_cannot_be_taken_every_write_waiting_for_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """None of them ran: each caller gets an error, none a silent empty answer."""
    store = SqliteStore(tmp_path / "keys.db", "group", ttl_s=60, lease_s=30)
    assert store._file is not None and _sqlite_writes.fcntl is not None
    outcomes: list[BaseException | object] = []

    def claim(key: str) -> None:
        try:
            outcomes.append(store.claim(key))
        except BaseException as exc:  # noqa: BLE001 - what each caller got is the point
            outcomes.append(exc)

    def refuse(fd: int, operation: int) -> None:
        raise OSError("no locks available")

    try:
        with store._file.lock.threads:
            threads = _threads(lambda: claim("a"), lambda: claim("b"))
            _queued(store, 2)
            monkeypatch.setattr(_sqlite_writes.fcntl, "flock", refuse)
        for thread in threads:
            thread.join(10)
        assert len(outcomes) == 2
        assert all(isinstance(o, OSError | IdempotencyStoreError) for o in outcomes), outcomes
        assert any("no locks available" in str(o) for o in outcomes)
        monkeypatch.undo()
        assert store.claim_many(["a", "b"]) == [ClaimState.NEW, ClaimState.NEW]  # nothing was claimed
    finally:
        store.close()
