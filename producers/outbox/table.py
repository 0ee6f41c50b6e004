"""The outbox table, in SQLite or PostgreSQL: its schema and every statement on it.

One row per record to publish, in the database of the service (the idempotency store's, for handlers)::

    id          ordering id: an identity (PostgreSQL) or AUTOINCREMENT (SQLite), never reused
    event_id    the event's id (its kep-idempotency-key header)
    topic, key, value, headers   the encoded record (headers as JSON pairs, values base64)
    created_at  unix seconds (the database clock on PostgreSQL)
    sent_at     unix seconds once the relay published it; NULL until then

``kep_outbox_relay`` holds one random id per outbox table: the relay's stable identity (its Kafka
``transactional.id`` and the key of its progress marker), the same whatever URL a replica reaches the database by.
A statement runs on the caller's connection, inside the caller's transaction.
"""

from __future__ import annotations

import re
import sqlite3
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kep.producers.errors import OutboxError
from kep.producers.outbox.record import OutboxRecord

DEFAULT_TABLE = "kep_outbox"
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,47}")

_SQLITE_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS {t} (
        id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, topic TEXT NOT NULL, key BLOB,
        value BLOB NOT NULL, headers TEXT NOT NULL, created_at REAL NOT NULL, sent_at REAL)""",
    "CREATE INDEX IF NOT EXISTS {t}_unsent ON {t} (id) WHERE sent_at IS NULL",
    "CREATE INDEX IF NOT EXISTS {t}_sent ON {t} (sent_at) WHERE sent_at IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS kep_outbox_relay (outbox TEXT PRIMARY KEY, relay_id TEXT NOT NULL)",
)
_POSTGRES_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS {t} (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, event_id TEXT NOT NULL, topic TEXT NOT NULL,
        key BYTEA, value BYTEA NOT NULL, headers TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL DEFAULT extract(epoch FROM clock_timestamp()),
        sent_at DOUBLE PRECISION)""",
    "CREATE INDEX IF NOT EXISTS {t}_unsent ON {t} (id) WHERE sent_at IS NULL",
    "CREATE INDEX IF NOT EXISTS {t}_sent ON {t} (sent_at) WHERE sent_at IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS kep_outbox_relay (outbox TEXT PRIMARY KEY, relay_id TEXT NOT NULL)",
)


def check_table_name(name: str) -> str:
    """``name`` when it is a plain lower-case SQL identifier (it is put into statements), else OutboxError."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise OutboxError(
            f"outbox table name {name!r}: use lower-case letters, digits and '_' (at most 48, not a digit first)"
        )
    return name


@dataclass(frozen=True)
class Row:
    """An unsent row, as the relay reads it."""

    id: int
    topic: str
    key: bytes | None
    value: bytes
    headers: str


class OutboxTable:
    """The statements of one outbox table in one SQL dialect (``sqlite`` or ``postgres``)."""

    def __init__(self, dialect: str, name: str = DEFAULT_TABLE) -> None:
        if dialect not in ("sqlite", "postgres"):
            raise OutboxError(f"outbox: unknown SQL dialect {dialect!r}")
        self.dialect = dialect
        self.name = check_table_name(name)
        self._p = "?" if dialect == "sqlite" else "%s"

    @classmethod
    def for_connection(cls, conn: Any, name: str = DEFAULT_TABLE) -> OutboxTable:
        """The table for a sqlite3 or psycopg connection; OutboxError naming any other kind."""
        if isinstance(conn, sqlite3.Connection):
            return cls("sqlite", name)
        module = type(conn).__module__
        if module.startswith("psycopg"):
            return cls("postgres", name)
        raise OutboxError(
            f"the outbox needs a sqlite3 or psycopg connection in a transaction, got a "
            f"{module}.{type(conn).__qualname__}"
        )

    def _sql(self, text: str) -> str:
        return text.replace("{t}", self.name).replace("?", self._p)

    # -- schema ------------------------------------------------------------------------------------------
    def create(self, conn: Any) -> None:
        """Create the table, its index of unsent rows and the relay-id table if they do not exist."""
        for statement in _SQLITE_SCHEMA if self.dialect == "sqlite" else _POSTGRES_SCHEMA:
            conn.execute(statement.replace("{t}", self.name))

    def relay_id(self, conn: Any) -> str:
        """This outbox's stable relay identity, created on first use."""
        conn.execute(
            self._sql("INSERT INTO kep_outbox_relay (outbox, relay_id) VALUES (?, ?) ON CONFLICT DO NOTHING"),
            (self.name, uuid.uuid4().hex),
        )
        row = conn.execute(self._sql("SELECT relay_id FROM kep_outbox_relay WHERE outbox = ?"), (self.name,))
        return str(row.fetchone()[0])

    # -- writers -----------------------------------------------------------------------------------------
    def insert(self, conn: Any, record: OutboxRecord) -> int:
        """Write ``record`` in the caller's transaction; its ordering id."""
        params: tuple[Any, ...] = (
            record.event_id,
            record.topic,
            record.key,
            record.value,
            record.headers_json(),
        )
        if self.dialect == "sqlite":
            sql = (
                "INSERT INTO {t} (event_id, topic, key, value, headers, created_at) VALUES (?, ?, ?, ?, ?, ?)"
            )
            params = (*params, time.time())
        else:
            sql = "INSERT INTO {t} (event_id, topic, key, value, headers) VALUES (?, ?, ?, ?, ?)"
        row = conn.execute(self._sql(sql + " RETURNING id"), params).fetchone()
        return int(row[0])

    # -- the relay -------------------------------------------------------------------------------------------
    def unsent(self, conn: Any, limit: int) -> list[Row]:
        rows = conn.execute(
            self._sql(
                "SELECT id, topic, key, value, headers FROM {t} WHERE sent_at IS NULL ORDER BY id LIMIT ?"
            ),
            (limit,),
        ).fetchall()
        return [Row(int(r[0]), str(r[1]), _blob(r[2]), _blob(r[3]) or b"", str(r[4])) for r in rows]

    def mark_sent(self, conn: Any, ranges: Sequence[tuple[int, int]]) -> int:
        """Mark the rows of ``ranges`` (inclusive id ranges) sent; how many were still unsent."""
        now = time.time()
        sql = self._sql("UPDATE {t} SET sent_at = ? WHERE id BETWEEN ? AND ? AND sent_at IS NULL")
        done = 0
        for low, high in ranges:
            done += conn.execute(sql, (now, low, high)).rowcount
        return done

    def backlog(self, conn: Any) -> tuple[int, float | None]:
        """``(unsent rows, age in seconds of the oldest)``, by the database's clock."""
        row = conn.execute(
            self._sql(f"SELECT count(*), {self._now} - min(created_at) FROM {{t}} WHERE sent_at IS NULL")
        )
        count, age = row.fetchone()
        return int(count), None if age is None else max(0.0, float(age))

    # -- what operators ask (``kep outbox ls``) ------------------------------------------------------------
    def pending_by_topic(self, conn: Any) -> list[tuple[str, int, float]]:
        """``(topic, unsent rows, age in seconds of its oldest)`` per topic with unsent rows, most first."""
        rows = conn.execute(
            self._sql(
                f"SELECT topic, count(*), {self._now} - min(created_at) FROM {{t}} "
                "WHERE sent_at IS NULL GROUP BY topic ORDER BY count(*) DESC, topic"
            )
        ).fetchall()
        return [(str(r[0]), int(r[1]), max(0.0, float(r[2]))) for r in rows]

    def sent_kept(self, conn: Any) -> int:
        """Rows sent and kept as the history (until ``retention_s``)."""
        row = conn.execute(self._sql("SELECT count(*) FROM {t} WHERE sent_at IS NOT NULL")).fetchone()
        return int(row[0])

    def oldest_unsent(self, conn: Any, limit: int) -> list[tuple[int, str, str, bytes | None, float]]:
        """``(id, event id, topic, key, age in seconds)`` of the ``limit`` oldest unsent rows."""
        rows = conn.execute(
            self._sql(
                f"SELECT id, event_id, topic, key, {self._now} - created_at FROM {{t}} "
                "WHERE sent_at IS NULL ORDER BY id LIMIT ?"
            ),
            (limit,),
        ).fetchall()
        return [(int(r[0]), str(r[1]), str(r[2]), _blob(r[3]), max(0.0, float(r[4]))) for r in rows]

    @property
    def _now(self) -> str:
        """The database's clock in unix seconds (``created_at`` is the database clock on PostgreSQL)."""
        return (
            "extract(epoch FROM clock_timestamp())"
            if self.dialect == "postgres"
            else "((julianday('now') - 2440587.5) * 86400.0)"
        )

    def purge(self, conn: Any, older_than_s: float) -> int:
        """Delete rows sent more than ``older_than_s`` seconds ago (the bounded history)."""
        sql = self._sql("DELETE FROM {t} WHERE sent_at IS NOT NULL AND sent_at < ?")
        return int(conn.execute(sql, (time.time() - older_than_s,)).rowcount)


def id_ranges(ids: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted ids as inclusive ranges of consecutive ids: ``[1, 2, 3, 7]`` -> ``[(1, 3), (7, 7)]``.

    An id missing between two others (a transaction not committed when the batch was read) splits a range, so
    marking the ranges sent never marks a row that was not in the batch."""
    ranges: list[tuple[int, int]] = []
    for i in sorted(ids):
        if ranges and i == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], i)
        else:
            ranges.append((i, i))
    return ranges


def _blob(value: Any) -> bytes | None:
    return None if value is None else bytes(value)
