"""Limits in PostgreSQL: each rate decision is one upsert (a row lock), each slot one ``UPDATE ... SKIP LOCKED``.

Times come from ``clock_timestamp()`` unless a clock is given, so replicas on other hosts agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from kep.consumers.idempotency._connections import ThreadConnections
from kep.consumers.limits.errors import LimitStoreError
from kep.consumers.limits.store import Clock, LimitStore

T = TypeVar("T")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS kep_limit_rate (
        namespace text NOT NULL, key text NOT NULL,
        tat double precision NOT NULL,          -- theoretical arrival time (epoch seconds), gcra.py
        PRIMARY KEY (namespace, key))""",
    """CREATE TABLE IF NOT EXISTS kep_limit_slot (
        namespace text NOT NULL, key text NOT NULL, slot integer NOT NULL,
        holder text NOT NULL,                   -- '' when free
        expires_at double precision NOT NULL,   -- lease end (epoch seconds)
        PRIMARY KEY (namespace, key, slot))""",
)
_NOW = "COALESCE(%(now)s::float8, extract(epoch FROM clock_timestamp())::float8)"
# Allowed: the row is written and 0 returned. Refused: the upsert writes nothing and the wait is read from the
# statement's snapshot (it may be a little early: the caller then asks again). The upsert reads the clock again
# once it holds the row's lock, so a start that waited for a concurrent one's lock never uses a stale "now".
_TAKE = f"""
WITH taken AS (
    INSERT INTO kep_limit_rate AS t (namespace, key, tat)
    VALUES (%(ns)s, %(key)s, {_NOW} + %(interval)s)
    ON CONFLICT (namespace, key) DO UPDATE
        SET tat = GREATEST(t.tat, {_NOW}) + %(interval)s
        WHERE GREATEST(t.tat, {_NOW}) - %(tolerance)s <= {_NOW}
    RETURNING 0.0::float8 AS wait)
SELECT wait FROM taken
UNION ALL
SELECT GREATEST(GREATEST(t.tat, {_NOW}) - %(tolerance)s - {_NOW}, 0.001) FROM kep_limit_rate t
WHERE t.namespace = %(ns)s AND t.key = %(key)s AND NOT EXISTS (SELECT 1 FROM taken)
"""
_SLOTS = """
INSERT INTO kep_limit_slot (namespace, key, slot, holder, expires_at)
SELECT %(ns)s, %(key)s, s, '', 0 FROM generate_series(0, %(slots)s - 1) AS s
ON CONFLICT DO NOTHING
"""
_ENTER = f"""
UPDATE kep_limit_slot SET holder = %(holder)s, expires_at = {_NOW} + %(lease)s
WHERE (namespace, key, slot) = (
    SELECT namespace, key, slot FROM kep_limit_slot
    WHERE namespace = %(ns)s AND key = %(key)s AND slot < %(slots)s AND expires_at <= {_NOW}
    ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING slot
"""
_FIRST_END = f"""
SELECT min(expires_at) - {_NOW} FROM kep_limit_slot
WHERE namespace = %(ns)s AND key = %(key)s AND slot < %(slots)s
"""
_PURGE = f"DELETE FROM kep_limit_rate WHERE namespace = %(ns)s AND tat < {_NOW} - 60"
#: Rate decisions between two purges of full buckets' rows.
PURGE_EVERY = 10_000
_LEAVE = """
UPDATE kep_limit_slot SET holder = '', expires_at = 0
WHERE namespace = %(ns)s AND key = %(key)s AND holder = %(holder)s
"""


class PostgresLimitStore(LimitStore):
    def __init__(self, dsn: str, namespace: str, *, clock: Clock | None = None) -> None:
        super().__init__(namespace, clock=clock)
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - optional dependency
            raise LimitStoreError("the postgres limit store needs the 'psycopg' package") from exc
        self._psycopg: Any = psycopg
        self._conns: ThreadConnections[Any] = ThreadConnections(
            lambda: psycopg.connect(dsn, autocommit=True, connect_timeout=5), lambda conn: conn.close()
        )
        self._ready: set[tuple[str, int]] = set()  # (key, slots) whose slot rows exist
        self._takes = 0
        for statement in _SCHEMA:
            try:
                self._execute(statement)
            except LimitStoreError:  # two replicas creating the table at once: the other one won
                self._execute(statement)

    def _execute(self, statement: str) -> None:
        self._run(lambda conn: conn.execute(statement))

    def _run(self, fn: Callable[[Any], T]) -> T:
        try:
            return fn(self._conns.get(usable=lambda conn: not conn.closed))
        except self._psycopg.Error as exc:
            conn = self._conns.current()
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001, S110 - it is being thrown away
                    pass
                self._conns.forget()
            raise LimitStoreError(f"postgres limit store: {exc}") from exc

    def _params(self, key: str, **extra: object) -> dict[str, object]:
        return {
            "ns": self.namespace,
            "key": key,
            "now": self.clock() if self.clock is not None else None,
            **extra,
        }

    def take(self, key: str, interval: float, tolerance: float) -> float:
        params = self._params(key, interval=interval, tolerance=tolerance)
        self._takes += 1
        if (
            self._takes % PURGE_EVERY == 0
        ):  # rows of full buckets are the same as no row: drop them now and then
            self._run(lambda conn: conn.execute(_PURGE, params))
        row = self._run(lambda conn: conn.execute(_TAKE, params).fetchone())
        return float(row[0]) if row is not None else interval  # refused in a race: ask again soon

    def enter(self, key: str, slots: int, lease_s: float, holder: str) -> float:
        params = self._params(key, slots=slots, lease=lease_s, holder=holder)

        def go(conn: Any) -> float:
            if (key, slots) not in self._ready:
                conn.execute(_SLOTS, params)
                if len(self._ready) > 100_000:
                    self._ready.clear()
                self._ready.add((key, slots))
            if conn.execute(_ENTER, params).fetchone() is not None:
                return 0.0
            row = conn.execute(_FIRST_END, params).fetchone()
            if row is None or row[0] is None:  # the slot rows are gone (purged, truncated): make them again
                self._ready.discard((key, slots))
                return 0.001
            return max(float(row[0]), 0.001)

        return self._run(go)

    def leave(self, key: str, holder: str) -> None:
        params = self._params(key, holder=holder)
        self._run(lambda conn: conn.execute(_LEAVE, params))

    def close(self) -> None:
        self._conns.close_all()
