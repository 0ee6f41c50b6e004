"""Limits in SQLite: shared by the worker processes of one host; each decision is one IMMEDIATE transaction.

The limits live in the idempotency store's file and write as its stores do (``SqliteFile.write``): on the
writers' lock of the file, in a transaction shared with the writes waiting beside them, on connections that
leave checkpoints to the checkpointer, so a decision neither sleeps in SQLite's busy handler behind a lane nor
copies the write-ahead log back inside its transaction."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from kep.consumers.idempotency._connections import ThreadConnections
from kep.consumers.idempotency._sqlite_writes import SqliteFile, close_file, open_file
from kep.consumers.limits.errors import LimitStoreError
from kep.consumers.limits.gcra import gcra
from kep.consumers.limits.store import Clock, LimitStore

T = TypeVar("T")

#: Rate decisions between two purges of full buckets' rows.
PURGE_EVERY = 10_000

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS kep_limit_rate (
        namespace TEXT NOT NULL, key TEXT NOT NULL,
        tat REAL NOT NULL,                  -- theoretical arrival time (unix seconds), gcra.py
        PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS kep_limit_lease (
        namespace TEXT NOT NULL, key TEXT NOT NULL, holder TEXT NOT NULL,
        expires_at REAL NOT NULL,           -- lease end (unix seconds)
        PRIMARY KEY (namespace, key, holder)
    ) WITHOUT ROWID""",
)


class SqliteLimitStore(LimitStore):
    def __init__(self, path: str | Path, namespace: str, *, clock: Clock | None = None) -> None:
        super().__init__(namespace, clock=clock)
        self.path = Path(path)
        self._now = clock or time.time
        self._takes = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LimitStoreError(f"sqlite limit store {self.path}: {exc}") from exc
        self._file: SqliteFile | None = open_file(self.path)
        self._write = self._file.write
        self._conns: ThreadConnections[sqlite3.Connection] = ThreadConnections(
            self._file.connect, sqlite3.Connection.close
        )
        try:
            conn = self._conns.get()
            with self._file.lock:
                for statement in _SCHEMA:
                    conn.execute(statement)
        except (OSError, sqlite3.Error) as exc:
            self.close()
            raise LimitStoreError(f"sqlite limit store {self.path}: {exc}") from exc

    def _transaction(self, fn: Callable[[sqlite3.Connection, float], T]) -> T:
        try:
            return self._write(self._conns.get(), lambda conn: fn(conn, self._now()))
        except sqlite3.Error as exc:
            raise LimitStoreError(f"sqlite limit store {self.path}: {exc}") from exc

    def take(self, key: str, interval: float, tolerance: float) -> float:
        ns = self.namespace

        self._takes += 1
        if (
            self._takes % PURGE_EVERY == 0
        ):  # rows of full buckets are the same as no row: drop them now and then
            self._transaction(
                lambda conn, now: conn.execute(
                    "DELETE FROM kep_limit_rate WHERE namespace = ? AND tat < ?", (ns, now - 60)
                )
            )

        def go(conn: sqlite3.Connection, now: float) -> float:
            row = conn.execute(
                "SELECT tat FROM kep_limit_rate WHERE namespace = ? AND key = ?", (ns, key)
            ).fetchone()
            wait, tat = gcra(row[0] if row else None, now, interval, tolerance)
            if tat is not None:
                conn.execute(
                    "INSERT INTO kep_limit_rate (namespace, key, tat) VALUES (?, ?, ?) "
                    "ON CONFLICT (namespace, key) DO UPDATE SET tat = excluded.tat",
                    (ns, key, tat),
                )
            return wait

        return self._transaction(go)

    def enter(self, key: str, slots: int, lease_s: float, holder: str) -> float:
        ns = self.namespace

        def go(conn: sqlite3.Connection, now: float) -> float:
            conn.execute(
                "DELETE FROM kep_limit_lease WHERE namespace = ? AND key = ? AND expires_at <= ?",
                (ns, key, now),
            )
            count, first = conn.execute(
                "SELECT count(*), min(expires_at) FROM kep_limit_lease WHERE namespace = ? AND key = ?",
                (ns, key),
            ).fetchone()
            if count < slots:
                conn.execute(
                    "INSERT OR REPLACE INTO kep_limit_lease (namespace, key, holder, expires_at) VALUES (?, ?, ?, ?)",
                    (ns, key, holder, now + lease_s),
                )
                return 0.0
            return max(float(first) - now, 0.001)

        return self._transaction(go)

    def leave(self, key: str, holder: str) -> None:
        self._transaction(
            lambda conn, now: conn.execute(
                "DELETE FROM kep_limit_lease WHERE namespace = ? AND key = ? AND holder = ?",
                (self.namespace, key, holder),
            )
        )

    def close(self) -> None:
        self._conns.close_all()
        file, self._file = self._file, None
        if file is not None:
            close_file(file)
