"""SQLite idempotency store: the embedded default, durable across restarts, shared by processes on one host."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from kep.consumers.errors import IdempotencyStoreError
from kep.consumers.idempotency._connections import ThreadConnections
from kep.consumers.idempotency._sqlite_writes import SqliteFile, close_file, open_file
from kep.consumers.idempotency.base import AlreadyCompletedError, ClaimState, IdempotencyStore, Key, digest

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kep_idempotency (
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    owner      TEXT NOT NULL,            -- '' once done
    expires_at REAL NOT NULL,            -- lease end while claimed, TTL end once done (unix seconds)
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID
"""
# Take the key when it is absent, expired, or already claimed by us; otherwise leave it and return nothing.
_CLAIM = """
INSERT INTO kep_idempotency (namespace, key, owner, expires_at) VALUES (?, ?, ?, ?)
ON CONFLICT (namespace, key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE kep_idempotency.expires_at <= ? OR kep_idempotency.owner = excluded.owner
RETURNING owner
"""
_STATE = "SELECT owner FROM kep_idempotency WHERE namespace = ? AND key = ?"
_COMPLETE = """
INSERT INTO kep_idempotency (namespace, key, owner, expires_at) VALUES (?, ?, '', ?)
ON CONFLICT (namespace, key) DO UPDATE SET owner = '', expires_at = excluded.expires_at
"""
_COMPLETE_IF_OURS = """
UPDATE kep_idempotency SET owner = '', expires_at = ? WHERE namespace = ? AND key = ? AND owner = ?
"""
_RELEASE = "DELETE FROM kep_idempotency WHERE namespace = ? AND key = ? AND owner = ?"
_PURGE = "DELETE FROM kep_idempotency WHERE expires_at <= ?"
# Batches: a few statements for any number of keys (given as a JSON array of digests). Each statement is one
# call into SQLite, so a batch releases and retakes the GIL a few times, not once or twice per key.
_EXISTING_MANY = """
SELECT key, owner, expires_at FROM kep_idempotency
WHERE namespace = ? AND key IN (SELECT value FROM json_each(?))
"""
_CLAIM_MANY = """
INSERT INTO kep_idempotency (namespace, key, owner, expires_at) SELECT ?, value, ?, ? FROM json_each(?) WHERE true
ON CONFLICT (namespace, key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE kep_idempotency.expires_at <= ? OR kep_idempotency.owner = excluded.owner
"""
_COMPLETE_MANY = """
INSERT INTO kep_idempotency (namespace, key, owner, expires_at) SELECT ?, value, '', ? FROM json_each(?) WHERE true
ON CONFLICT (namespace, key) DO UPDATE SET owner = '', expires_at = excluded.expires_at
"""
_RELEASE_MANY = """
DELETE FROM kep_idempotency WHERE namespace = ? AND owner = ? AND key IN (SELECT value FROM json_each(?))
"""


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
        self._conns: ThreadConnections[sqlite3.Connection] = ThreadConnections(
            self._file.connect, sqlite3.Connection.close
        )
        try:
            conn = self._conn()
            conn.execute(_SCHEMA)
            conn.execute(_PURGE, (time.time(),))
        except (OSError, sqlite3.Error) as exc:
            self.close()
            raise IdempotencyStoreError(f"sqlite idempotency store {self.path}: {exc}") from exc

    def _conn(self) -> sqlite3.Connection:
        return self._conns.get()

    def _error(self, exc: BaseException) -> IdempotencyStoreError:
        return IdempotencyStoreError(f"sqlite idempotency store {self.path}: {exc}")

    def claim(self, key: Key) -> ClaimState:
        name = digest(key)
        while True:
            now = time.time()
            try:
                conn = self._conn()
                with self._writing:
                    row = conn.execute(
                        _CLAIM, (self.namespace, name, self.owner, now + self.lease_s, now)
                    ).fetchone()
                if row is not None:
                    return ClaimState.NEW
                state = conn.execute(_STATE, (self.namespace, name)).fetchone()
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            if state is not None:  # None: released between the two statements, try again
                return ClaimState.DONE if state[0] == "" else ClaimState.BUSY

    def complete(self, key: Key) -> None:
        try:
            conn = self._conn()
            with self._writing:
                conn.execute(_COMPLETE, (self.namespace, digest(key), time.time() + self.ttl_s))
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def release(self, key: Key) -> None:
        try:
            conn = self._conn()
            with self._writing:
                conn.execute(_RELEASE, (self.namespace, digest(key), self.owner))
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    # -- batches: one write transaction for all the keys ---------------------------------------------------------
    @property
    def batches(self) -> bool:
        return _JSON  # the batch statements read their keys with json_each

    def claim_many(self, keys: Sequence[Key]) -> list[ClaimState]:
        names = [digest(key) for key in keys]
        listed = json.dumps(names)
        now = time.time()
        with self._batch() as conn:  # the write lock is held: nothing changes between the two statements
            existing = {
                row[0]: (row[1], row[2]) for row in conn.execute(_EXISTING_MANY, (self.namespace, listed))
            }
            conn.execute(_CLAIM_MANY, (self.namespace, self.owner, now + self.lease_s, listed, now))
        answers: list[ClaimState] = []
        for name in names:  # what _CLAIM decided for each key, from the rows it found
            found = existing.get(name)
            if found is None or found[1] <= now or found[0] == self.owner:
                answers.append(ClaimState.NEW)
            else:
                answers.append(ClaimState.DONE if found[0] == "" else ClaimState.BUSY)
        return answers

    def complete_many(self, keys: Sequence[Key]) -> None:
        listed = json.dumps([digest(key) for key in keys])
        with self._batch() as conn:
            conn.execute(_COMPLETE_MANY, (self.namespace, time.time() + self.ttl_s, listed))

    def release_many(self, keys: Sequence[Key]) -> None:
        listed = json.dumps([digest(key) for key in keys])
        with self._batch() as conn:
            conn.execute(_RELEASE_MANY, (self.namespace, self.owner, listed))

    @contextmanager
    def _batch(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection in one write transaction, committed at the end; errors roll it back and
        are ``IdempotencyStoreError``."""
        try:
            conn = self._conn()
            with self._writing:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    self._rollback(conn)
                    raise
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
                cur = conn.execute(
                    _COMPLETE_IF_OURS, (time.time() + self.ttl_s, self.namespace, name, self.owner)
                )
                if cur.rowcount != 1:
                    self._rollback(conn)
                    raise self._not_ours(conn, name)
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

    def _not_ours(self, conn: sqlite3.Connection, name: str) -> Exception:
        try:
            state = conn.execute(_STATE, (self.namespace, name)).fetchone()
        except sqlite3.Error as exc:
            return self._error(exc)
        if state is not None and state[0] == "":
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
