"""SQLite idempotency store: the embedded default, durable across restarts, shared by processes on one host."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kep.consumers.errors import IdempotencyStoreError
from kep.consumers.idempotency._connections import ThreadConnections
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


class SqliteStore(IdempotencyStore):
    """One connection per thread; WAL so readers and one writer coexist across processes."""

    def __init__(self, path: str | Path, namespace: str, *, ttl_s: float, lease_s: float) -> None:
        super().__init__(namespace, ttl_s=ttl_s, lease_s=lease_s)
        self.path = Path(path)
        self._conns: ThreadConnections[sqlite3.Connection] = ThreadConnections(
            self._connect, sqlite3.Connection.close
        )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._conn()
            conn.execute(_SCHEMA)
            conn.execute(_PURGE, (time.time(),))
        except (OSError, sqlite3.Error) as exc:
            raise IdempotencyStoreError(f"sqlite idempotency store {self.path}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

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
            self._conn().execute(_COMPLETE, (self.namespace, digest(key), time.time() + self.ttl_s))
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def release(self, key: Key) -> None:
        try:
            self._conn().execute(_RELEASE, (self.namespace, digest(key), self.owner))
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
