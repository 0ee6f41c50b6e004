"""The status store on SQLite or PostgreSQL: three tables beside ``kep_idempotency``.

One statement set for both (``?`` placeholders are rewritten to ``%s`` for psycopg). Batch counters move in
one transaction with the member's row, so a member recorded twice (a redelivery, two replicas after a
rebalance) counts once.

On PostgreSQL all three live in the idempotency store's database. On SQLite the batch tables do too, but event
states (a row per event, written in batches of thousands by a background thread) have a file of their own
beside it (``<name>-status<suffix>``, see :func:`events_path`): SQLite has one writer per file, and a lane
waiting for the idempotency file's lock behind a status write of thousands of rows (tens of milliseconds) is a
message waiting that long. States written into the idempotency file by an earlier kep are still read and expire
there.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from kep.consumers.errors import IdempotencyStoreError
from kep.consumers.idempotency._connections import ThreadConnections
from kep.consumers.idempotency._sqlite_writes import SqliteFile, close_file, open_file
from kep.consumers.status.model import BatchProgress, EventStatus, MemberState
from kep.consumers.status.store import StatusStore, counts_after

_EVENTS_SCHEMA = """CREATE TABLE IF NOT EXISTS kep_event_status (
    event_id TEXT NOT NULL, grp TEXT NOT NULL, at_ms BIGINT NOT NULL, expires_at DOUBLE PRECISION NOT NULL,
    record TEXT NOT NULL, PRIMARY KEY (event_id, grp))"""
_EVENTS_PURGE = "DELETE FROM kep_event_status WHERE expires_at <= ?"
_BATCH_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS kep_batch (
        batch_id TEXT NOT NULL, grp TEXT NOT NULL, total BIGINT NOT NULL, handled BIGINT NOT NULL,
        dead BIGINT NOT NULL, announced_ms BIGINT NOT NULL, first_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (batch_id, grp))""",
    """CREATE TABLE IF NOT EXISTS kep_batch_member (
        batch_id TEXT NOT NULL, grp TEXT NOT NULL, event_id TEXT NOT NULL, state TEXT NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (batch_id, grp, event_id))""",
)
_PUT_EVENT = """INSERT INTO kep_event_status (event_id, grp, at_ms, expires_at, record) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (event_id, grp) DO UPDATE SET at_ms = excluded.at_ms, expires_at = excluded.expires_at,
    record = excluded.record
WHERE excluded.at_ms >= kep_event_status.at_ms"""
# SQLite: every record in one statement, from a JSON array of [event_id, grp, at_ms, expires_at, record] rows.
_PUT_EVENTS_JSON = """INSERT INTO kep_event_status (event_id, grp, at_ms, expires_at, record)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
    json_extract(value, '$[3]'), json_extract(value, '$[4]') FROM json_each(?) WHERE true
ON CONFLICT (event_id, grp) DO UPDATE SET at_ms = excluded.at_ms, expires_at = excluded.expires_at,
    record = excluded.record
WHERE excluded.at_ms >= kep_event_status.at_ms"""
_EVENTS = "SELECT record FROM kep_event_status WHERE event_id = ? AND expires_at > ? ORDER BY grp"
_NEW_BATCH = """INSERT INTO kep_batch (batch_id, grp, total, handled, dead, announced_ms, first_ms, updated_ms,
    expires_at) VALUES (?, ?, ?, 0, 0, 0, ?, ?, ?) ON CONFLICT (batch_id, grp) DO NOTHING"""
_NEW_MEMBER = """INSERT INTO kep_batch_member (batch_id, grp, event_id, state, expires_at) VALUES (?, ?, ?, '', ?)
ON CONFLICT (batch_id, grp, event_id) DO NOTHING"""
_MEMBER = "SELECT state FROM kep_batch_member WHERE batch_id = ? AND grp = ? AND event_id = ?"
_SET_MEMBER = """UPDATE kep_batch_member SET state = ?, expires_at = ? WHERE batch_id = ? AND grp = ? AND
    event_id = ?"""
_COUNT = """UPDATE kep_batch SET handled = handled + ?, dead = dead + ?, updated_ms = ?, expires_at = ?
WHERE batch_id = ? AND grp = ?"""
_PROGRESS_COLUMNS = "batch_id, grp, total, handled, dead, announced_ms, first_ms, updated_ms"
_PROGRESS = f"SELECT {_PROGRESS_COLUMNS} FROM kep_batch WHERE batch_id = ? AND grp = ?"
_BATCHES = f"SELECT {_PROGRESS_COLUMNS} FROM kep_batch WHERE batch_id = ? AND expires_at > ? ORDER BY grp"
_DEAD = """SELECT event_id FROM kep_batch_member WHERE batch_id = ? AND grp = ? AND state = 'dead_lettered'
ORDER BY event_id"""
_ANNOUNCED = "UPDATE kep_batch SET announced_ms = ? WHERE batch_id = ? AND grp = ?"
_HAS_EVENTS_TABLE = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kep_event_status'"
_BATCH_PURGE = (
    "DELETE FROM kep_batch WHERE expires_at <= ?",
    "DELETE FROM kep_batch_member WHERE expires_at <= ?",
)


def events_path(path: Path) -> Path:
    """Where event states of the SQLite store at ``path`` are kept: ``.kep/idempotency.db`` ->
    ``.kep/idempotency-status.db``."""
    return path.with_name(f"{path.stem}-status{path.suffix}")


class _Database(NamedTuple):
    """Where a statement goes: the lock its writers of this process take turns on, and its connections."""

    writing: contextlib.AbstractContextManager[Any]
    conns: ThreadConnections[Any]


def _progress(row: Sequence[Any]) -> BatchProgress:
    return BatchProgress(str(row[0]), str(row[1]), *(int(v) for v in row[2:8]))


class SqlStatusStore(StatusStore):
    """``dialect`` 'sqlite' (a path) or 'postgres' (a DSN). One connection per thread."""

    def __init__(self, target: str | Path, *, dialect: str, ttl_s: float) -> None:
        super().__init__(ttl_s=ttl_s)
        self.dialect = dialect
        self._where = str(target).split("@")[-1]  # never show credentials
        self._files: list[SqliteFile] = []
        self._legacy_events = False  # event states an earlier kep wrote into the idempotency file (SQLite)
        if dialect == "sqlite":
            self._errors: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)
            path = Path(target)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise IdempotencyStoreError(f"sqlite status store {self._where}: {exc}") from exc
            # the idempotency file (shared with the idempotency store), and the event states' own
            self._files = [open_file(path), open_file(events_path(path))]
            self._db, self._events_db = (
                _Database(file.lock, ThreadConnections(file.connect, lambda c: c.close()))
                for file in self._files
            )
        else:
            try:
                import psycopg
            except ImportError as exc:  # pragma: no cover - optional dependency
                raise IdempotencyStoreError(
                    "the postgres status store needs 'psycopg': pip install 'kep-kafka[postgres]'"
                ) from exc
            self._errors = (psycopg.Error,)
            dsn = str(target)
            conns: ThreadConnections[Any] = ThreadConnections(
                lambda: psycopg.connect(dsn, autocommit=True, connect_timeout=5), lambda c: c.close()
            )
            self._db = self._events_db = _Database(contextlib.nullcontext(), conns)
        now = time.time()
        sqlite = dialect == "sqlite"
        with self._cursor(transaction=True) as run:
            if not sqlite:  # replicas starting together must not race on CREATE TABLE
                run("SELECT pg_advisory_xact_lock(7270012)")
            else:
                self._legacy_events = bool(run(_HAS_EVENTS_TABLE).fetchone())
            events_here = not sqlite or self._legacy_events  # event states in this database too
            for statement in (_EVENTS_SCHEMA, *_BATCH_SCHEMA) if not sqlite else _BATCH_SCHEMA:
                run(statement)
            for statement in (_EVENTS_PURGE, *_BATCH_PURGE) if events_here else _BATCH_PURGE:
                run(statement, (now,))
        if sqlite:
            with self._cursor(transaction=True, events=True) as run:
                run(_EVENTS_SCHEMA)
                run(_EVENTS_PURGE, (now,))

    def _sql(self, statement: str) -> str:
        return statement if self.dialect == "sqlite" else statement.replace("?", "%s")

    @contextmanager
    def _cursor(self, *, transaction: bool = False, events: bool = False) -> Iterator[Callable[..., Any]]:
        """``run(sql, params)``, optionally inside one transaction; store errors become
        ``IdempotencyStoreError`` naming the store. ``events``: on the event states' database (SQLite: their
        own file)."""
        db = self._events_db if events else self._db
        with db.writing if transaction else contextlib.nullcontext():
            with self._run(transaction, db.conns) as run:
                yield run

    @contextmanager
    def _run(self, transaction: bool, conns: ThreadConnections[Any]) -> Iterator[Callable[..., Any]]:
        try:
            conn = conns.get(usable=lambda c: not getattr(c, "closed", False))
            if transaction and self.dialect == "sqlite":
                conn.execute("BEGIN IMMEDIATE")
            tx = conn.transaction() if transaction and self.dialect != "sqlite" else None
            if tx is not None:
                tx.__enter__()
            try:
                yield lambda statement, params=(): conn.execute(self._sql(statement), params)
            except BaseException as exc:
                if tx is not None:
                    tx.__exit__(type(exc), exc, exc.__traceback__)
                elif transaction:
                    conn.execute("ROLLBACK")
                raise
            if tx is not None:
                tx.__exit__(None, None, None)
            elif transaction:
                conn.execute("COMMIT")
        except self._errors as exc:
            conns.forget()
            raise IdempotencyStoreError(f"{self.dialect} status store {self._where}: {exc}") from exc

    def put_events(self, records: Sequence[EventStatus]) -> None:
        if not records:
            return
        expires = time.time() + self.ttl_s
        rows = [(r.event_id, r.group, r.at_ms, expires, r.to_json().decode()) for r in records]
        if self.dialect == "sqlite" and sqlite3.sqlite_version_info >= (3, 38):
            listed = orjson.dumps(rows).decode()
            with self._cursor(transaction=True, events=True) as run:  # one call into SQLite for the lot
                run(_PUT_EVENTS_JSON, (listed,))
            return
        with self._cursor(transaction=True, events=True) as run:
            for row in rows:
                run(_PUT_EVENT, row)

    def events(self, event_id: str) -> list[EventStatus]:
        now = time.time()
        with self._cursor(events=True) as run:
            rows = run(_EVENTS, (event_id, now)).fetchall()
        if self._legacy_events:  # an earlier kep's states, in the idempotency file: the newer record wins
            with self._cursor() as run:
                rows += run(_EVENTS, (event_id, now)).fetchall()
        latest: dict[str, EventStatus] = {}
        for record in (EventStatus.from_json(row[0]) for row in rows):
            known = latest.get(record.group)
            if known is None or record.at_ms >= known.at_ms:
                latest[record.group] = record
        return [latest[group] for group in sorted(latest)]

    def record_member(
        self, group: str, batch_id: str, total: int, event_id: str, state: MemberState, now_ms: int
    ) -> BatchProgress:
        expires = time.time() + self.ttl_s
        lock = "" if self.dialect == "sqlite" else " FOR UPDATE"
        with self._cursor(transaction=True) as run:
            run(_NEW_BATCH, (batch_id, group, total, now_ms, now_ms, expires))
            run(_NEW_MEMBER, (batch_id, group, event_id, expires))
            old = run(_MEMBER + lock, (batch_id, group, event_id)).fetchone()[0] or None
            if old != state:
                handled, dead = counts_after(old, state)
                run(_SET_MEMBER, (state, expires, batch_id, group, event_id))
                run(_COUNT, (handled, dead, now_ms, expires, batch_id, group))
            row = run(_PROGRESS, (batch_id, group)).fetchone()
        return _progress(row)

    def batches(self, batch_id: str) -> list[BatchProgress]:
        with self._cursor() as run:
            rows = run(_BATCHES, (batch_id, time.time())).fetchall()
        return [_progress(row) for row in rows]

    def dead_members(self, group: str, batch_id: str) -> list[str]:
        with self._cursor() as run:
            return [str(row[0]) for row in run(_DEAD, (batch_id, group)).fetchall()]

    def mark_announced(self, group: str, batch_id: str, now_ms: int) -> None:
        with self._cursor() as run:
            run(_ANNOUNCED, (now_ms, batch_id, group))

    def close(self) -> None:
        self._db.conns.close_all()
        if self._events_db is not self._db:
            self._events_db.conns.close_all()
        files, self._files = self._files, []
        for file in files:
            close_file(file)
