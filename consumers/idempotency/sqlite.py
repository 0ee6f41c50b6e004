"""SQLite idempotency store: the embedded default, durable across restarts, shared by processes on one host."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import orjson

from kep.consumers.errors import IdempotencyStoreError
from kep.consumers.idempotency._connections import ThreadConnections
from kep.consumers.idempotency._sqlite_writes import SqliteFile, close_file, open_file
from kep.consumers.idempotency.base import AlreadyCompletedError, ClaimState, IdempotencyStore, Key, digest

# Completed keys, kept for the TTL: a big table whose keys are random, so every write dirties a page of its
# own (written whole to the write-ahead log). Claims, which live only while a message is in flight, have a
# small table of their own that stays in the page cache: a key costs one write to the big table, not two.
# (Files written before kep kept claims in the big table too: such a row, owner not '', still counts as a
# claim until it expires.)
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS kep_idempotency (
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    owner      TEXT NOT NULL,            -- '' once done
    expires_at REAL NOT NULL,            -- TTL end once done (unix seconds)
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS kep_idempotency_claim (
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    owner      TEXT NOT NULL,
    expires_at REAL NOT NULL,            -- lease end (unix seconds)
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID""",
)
# The key's state in both tables: (done row owner, its expiry, claim owner, its expiry); NULLs where absent.
_STATE = """
SELECT d.owner, d.expires_at, c.owner, c.expires_at FROM (SELECT 1) AS one
LEFT JOIN kep_idempotency AS d ON d.namespace = ?1 AND d.key = ?2
LEFT JOIN kep_idempotency_claim AS c ON c.namespace = ?1 AND c.key = ?2
"""
_CLAIM = """
INSERT INTO kep_idempotency_claim (namespace, key, owner, expires_at) VALUES (?, ?, ?, ?)
ON CONFLICT (namespace, key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
"""
_COMPLETE = """
INSERT INTO kep_idempotency (namespace, key, owner, expires_at) VALUES (?, ?, '', ?)
ON CONFLICT (namespace, key) DO UPDATE SET owner = '', expires_at = excluded.expires_at
"""
_UNCLAIM = "DELETE FROM kep_idempotency_claim WHERE namespace = ? AND key = ?"
_RELEASE = (
    "DELETE FROM kep_idempotency_claim WHERE namespace = ? AND key = ? AND owner = ?",
    "DELETE FROM kep_idempotency WHERE namespace = ? AND key = ? AND owner = ?",  # an older file's claim
)
_PURGE = (
    "DELETE FROM kep_idempotency WHERE expires_at <= ?",
    "DELETE FROM kep_idempotency_claim WHERE expires_at <= ?",
)
# Batches: a few statements for any number of keys (given as a JSON array of digests). Each statement is one
# call into SQLite, so a batch releases and retakes the GIL a few times, not once or twice per key.
# The keys' states as one row (a JSON array of ``[key, *_STATE row]``): Python's sqlite3 gives up the GIL for
# every row it steps to, and while a writer holds the file's write lock, each time back can wait a whole thread
# switch interval behind a busy lane.
_STATE_MANY = """
SELECT json_group_array(json_array(j.value, d.owner, d.expires_at, c.owner, c.expires_at)) FROM json_each(?2) AS j
LEFT JOIN kep_idempotency AS d ON d.namespace = ?1 AND d.key = j.value
LEFT JOIN kep_idempotency_claim AS c ON c.namespace = ?1 AND c.key = j.value
"""
_CLAIM_MANY = """
INSERT INTO kep_idempotency_claim (namespace, key, owner, expires_at) SELECT ?, value, ?, ? FROM json_each(?) WHERE true
ON CONFLICT (namespace, key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
"""
_COMPLETE_MANY = """
INSERT INTO kep_idempotency (namespace, key, owner, expires_at) SELECT ?, value, '', ? FROM json_each(?) WHERE true
ON CONFLICT (namespace, key) DO UPDATE SET owner = '', expires_at = excluded.expires_at
"""
_UNCLAIM_MANY = """
DELETE FROM kep_idempotency_claim WHERE namespace = ? AND key IN (SELECT value FROM json_each(?))
"""
_RELEASE_MANY = (
    "DELETE FROM kep_idempotency_claim WHERE namespace = ? AND owner = ? AND key IN (SELECT value FROM json_each(?))",
    "DELETE FROM kep_idempotency WHERE namespace = ? AND owner = ? AND key IN (SELECT value FROM json_each(?))",
)


def _decide(owner: str, row: Sequence[object], now: float) -> ClaimState:
    """What a claim by ``owner`` finds, from the key's ``_STATE`` row: DONE, BUSY (another owner's live
    claim) or NEW (absent, expired, or ours already)."""
    done_owner, done_expires, claim_owner, claim_expires = row
    if done_owner is not None and done_expires > now:  # type: ignore[operator]
        if done_owner == "":
            return ClaimState.DONE
        if done_owner != owner:  # an older file's claim, kept in the big table
            return ClaimState.BUSY
    if claim_owner is not None and claim_expires > now and claim_owner != owner:  # type: ignore[operator]
        return ClaimState.BUSY
    return ClaimState.NEW


T = TypeVar("T")
_JSON = sqlite3.sqlite_version_info >= (3, 38)  # JSON functions built in from SQLite 3.38 on


class SqliteStore(IdempotencyStore):
    """One connection per thread; WAL so readers and one writer coexist across processes."""

    def __init__(self, path: str | Path, namespace: str, *, ttl_s: float, lease_s: float) -> None:
        super().__init__(namespace, ttl_s=ttl_s, lease_s=lease_s)
        self.path = Path(path)
        self._file: SqliteFile | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IdempotencyStoreError(f"sqlite idempotency store {self.path}: {exc}") from exc
        # writers of this file in this process queue on its lock, not in SQLite; checkpoints run off the hot path
        self._file = open_file(self.path)
        self._writing = self._file.lock
        self._combined = self._file.write
        self._conns: ThreadConnections[sqlite3.Connection] = ThreadConnections(
            self._file.connect, sqlite3.Connection.close
        )
        try:
            conn = self._conn()
            now = time.time()
            with self._writing:
                for statement in _SCHEMA:
                    conn.execute(statement)
                for statement in _PURGE:
                    conn.execute(statement, (now,))
        except (OSError, sqlite3.Error) as exc:
            self.close()
            raise IdempotencyStoreError(f"sqlite idempotency store {self.path}: {exc}") from exc

    def _conn(self) -> sqlite3.Connection:
        return self._conns.get()

    def _error(self, exc: BaseException) -> IdempotencyStoreError:
        return IdempotencyStoreError(f"sqlite idempotency store {self.path}: {exc}")

    def claim(self, key: Key) -> ClaimState:
        name = digest(key)

        def claim(conn: sqlite3.Connection) -> ClaimState:  # read and claim in one write transaction
            now = time.time()
            found = _decide(self.owner, conn.execute(_STATE, (self.namespace, name)).fetchone(), now)
            if found is ClaimState.NEW:
                conn.execute(_CLAIM, (self.namespace, name, self.owner, now + self.lease_s))
            return found

        return self._write(claim)

    def complete(self, key: Key) -> None:
        name = digest(key)

        def complete(conn: sqlite3.Connection) -> None:
            conn.execute(_COMPLETE, (self.namespace, name, time.time() + self.ttl_s))
            conn.execute(_UNCLAIM, (self.namespace, name))

        self._write(complete)

    def release(self, key: Key) -> None:
        name = digest(key)

        def release(conn: sqlite3.Connection) -> None:
            for statement in _RELEASE:
                conn.execute(statement, (self.namespace, name, self.owner))

        self._write(release)

    # -- batches: one write transaction for all the keys ---------------------------------------------------------
    @property
    def batches(self) -> bool:
        return _JSON  # the batch statements read their keys with json_each

    def claim_many(self, keys: Sequence[Key]) -> list[ClaimState]:
        names = [digest(key) for key in keys]

        def claim_many(conn: sqlite3.Connection) -> dict[str, ClaimState]:  # nothing changes in between
            now = time.time()
            (states,) = conn.execute(_STATE_MANY, (self.namespace, json.dumps(names))).fetchone()
            found = {row[0]: _decide(self.owner, row[1:], now) for row in orjson.loads(states)}
            new = [name for name, state in found.items() if state is ClaimState.NEW]
            if new:
                conn.execute(_CLAIM_MANY, (self.namespace, self.owner, now + self.lease_s, json.dumps(new)))
            return found

        found = self._write(claim_many)
        return [found[name] for name in names]

    def complete_many(self, keys: Sequence[Key]) -> None:
        self.settle_many(keys, ())

    def release_many(self, keys: Sequence[Key]) -> None:
        self.settle_many((), keys)

    def settle_many(self, done: Sequence[Key], released: Sequence[Key]) -> None:
        """One write transaction: in SQLite a transaction's cost is mostly its commit and the pages it writes."""
        if not done and not released:
            return
        gone = json.dumps([digest(key) for key in released]) if released else None
        kept = json.dumps([digest(key) for key in done]) if done else None

        def settle_many(conn: sqlite3.Connection) -> None:
            if gone is not None:
                for statement in _RELEASE_MANY:
                    conn.execute(statement, (self.namespace, self.owner, gone))
            if kept is not None:
                conn.execute(_COMPLETE_MANY, (self.namespace, time.time() + self.ttl_s, kept))
                conn.execute(_UNCLAIM_MANY, (self.namespace, kept))

        self._write(settle_many)

    def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """``op`` in a write transaction, with the writes other threads of this process wait to make (one
        commit for all: ``SqliteFile.write``); a failure is ``IdempotencyStoreError``, nothing of it committed."""
        try:
            return self._combined(self._conn(), op)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    @contextmanager
    def transaction(self, key: Key) -> Iterator[sqlite3.Connection]:
        """Yield this thread's connection inside ``BEGIN IMMEDIATE``; the key is completed before COMMIT.

        The store failing to begin, complete or commit is an ``IdempotencyStoreError`` (waited out, the event
        run again); an error of the handler's own statements is the handler's failure, raised as it is.
        """
        name = digest(key)
        conn = self._conn()
        with self._writing:  # the whole transaction: it holds SQLite's write lock from BEGIN IMMEDIATE anyway
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            try:
                yield conn
            except BaseException:
                self._rollback(conn)
                raise
            try:
                now = time.time()
                row = conn.execute(_STATE, (self.namespace, name)).fetchone()
                if row[2] != self.owner:  # not ours (any more): released, or taken once its lease ended
                    self._rollback(conn)
                    raise self._not_ours(row, now)
                conn.execute(_COMPLETE, (self.namespace, name, now + self.ttl_s))
                conn.execute(_UNCLAIM, (self.namespace, name))
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback(conn)
                raise self._error(exc) from exc

    def _rollback(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:  # nothing was committed either way
                pass

    def _not_ours(self, row: Sequence[object], now: float) -> Exception:
        if row[0] == "" and row[1] > now:  # type: ignore[operator]
            return AlreadyCompletedError("the idempotency key was completed meanwhile")
        return IdempotencyStoreError(
            f"sqlite idempotency store {self.path}: this worker's claim was lost (its lease expired)"
        )

    @property
    def supports_transactions(self) -> bool:
        return True

    def close(self) -> None:
        self._conns.close_all()
        file, self._file = self._file, None
        if file is not None:
            close_file(file)
