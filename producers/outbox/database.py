"""The relay's side of the outbox database: opened from the idempotency store's URL (``sqlite:///path`` or
``postgresql://...``), with the lock that makes one relay per database and table the active one.

The lock: on PostgreSQL a session advisory lock held by a connection of its own (released when that
connection or its process dies); on SQLite an exclusive ``flock`` on ``<database>.<table>.relay.lock``
(released by the kernel when the process dies). A relay that cannot take it stands by and tries again.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kep.producers.errors import OutboxError
from kep.producers.outbox.table import DEFAULT_TABLE, OutboxTable


def _shown(url: str) -> str:
    return url.split("@")[-1] if "@" in url else url  # never show credentials


class OutboxDatabase:
    """One connection (opened on first use) to the outbox's database, for the relay's thread."""

    def __init__(self, url: str, table: str = DEFAULT_TABLE) -> None:
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        self.url = url
        self.where = _shown(url)
        if scheme == "sqlite":
            path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
            if not path:
                raise OutboxError(
                    f"outbox database {url!r}: expected sqlite:///relative.db or sqlite:////abs.db"
                )
            self.path: Path | None = Path(path)
            self.table = OutboxTable("sqlite", table)
        elif scheme in ("postgresql", "postgres"):
            self.path = None
            self.table = OutboxTable("postgres", table)
        else:
            raise OutboxError(
                f"the outbox needs an SQL database (sqlite:/// or postgresql://), not {self.where!r}: "
                "memory:// and redis:// stores have no transaction an outbox row could share"
            )
        self._conn: Any = None

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        if self.path is not None:
            return (sqlite3.Error, OSError)
        import psycopg

        return (psycopg.Error,)

    def connect(self) -> Any:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            return conn
        import psycopg

        return psycopg.connect(self.url, autocommit=True, connect_timeout=5)

    @property
    def conn(self) -> Any:
        if self._conn is None or getattr(self._conn, "closed", False):
            self._conn = self.connect()
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        conn = self.conn
        if self.path is not None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        else:
            with conn.transaction():
                yield conn

    def create(self, attempts: int = 3) -> str:
        """Create the tables if missing; the outbox's relay id. Processes starting together may race on
        PostgreSQL's ``CREATE TABLE IF NOT EXISTS`` (a unique violation in its catalog): tried again."""
        for attempt in range(attempts):
            try:
                with self.transaction() as conn:
                    self.table.create(conn)
                with self.transaction() as conn:
                    return self.table.relay_id(conn)
            except self.errors:
                self.reset()
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def reset(self) -> None:
        """Throw the connection away (after an error); the next use opens a new one."""
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001, S110 - it is being thrown away
                pass
            self._conn = None

    def lock(self) -> RelayLock:
        if self.path is not None:
            return FileLock(Path(f"{self.path}.{self.table.name}.relay.lock"))
        return AdvisoryLock(self.url, self.table.name)


class RelayLock:
    """Held by at most one relay per database and table."""

    def acquire(self) -> bool:
        """Try to take the lock without waiting; True when this relay holds it now."""
        raise NotImplementedError

    def held(self) -> bool:
        """Still held (the PostgreSQL connection holding it is alive)."""
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError


class FileLock(RelayLock):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        import fcntl

        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


class AdvisoryLock(RelayLock):
    def __init__(self, dsn: str, table: str) -> None:
        self.dsn = dsn
        digest = hashlib.blake2b(f"kep-outbox-relay:{table}".encode(), digest_size=8).digest()
        self.key = int.from_bytes(digest, "big", signed=True)
        self._conn: Any = None

    def acquire(self) -> bool:
        import psycopg

        if self.held():
            return True
        self.release()
        try:
            conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        except psycopg.Error:
            return False
        if got is None or not got[0]:
            conn.close()
            return False
        self._conn = conn
        return True

    def held(self) -> bool:
        if self._conn is None or self._conn.closed:
            return False
        try:
            self._conn.execute("SELECT 1")
        except Exception:  # noqa: BLE001 - a connection that does not answer holds nothing
            self.release()
            return False
        return True

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()  # the session ends: its advisory lock is released
            except Exception:  # noqa: BLE001, S110
                pass
            self._conn = None
