"""PostgreSQL idempotency store: shared by every replica, and transactional.

``transaction(key)`` yields a connection inside a transaction: the handler writes its rows there and the key is
completed in the same transaction, so a database side effect happens exactly once even across crashes and
redeliveries. Times come from the database clock so replicas on other hosts agree on lease expiry.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kep.consumers.errors import IdempotencyStoreError
from kep.consumers.idempotency._connections import ThreadConnections
from kep.consumers.idempotency.base import AlreadyCompletedError, ClaimState, IdempotencyStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kep_idempotency (
    namespace  text        NOT NULL,
    key        text        NOT NULL,
    owner      text        NOT NULL,   -- '' once done
    expires_at timestamptz NOT NULL,   -- lease end while claimed, TTL end once done
    PRIMARY KEY (namespace, key)
)
"""
_CLAIM = """
INSERT INTO kep_idempotency AS t (namespace, key, owner, expires_at)
VALUES (%(ns)s, %(key)s, %(owner)s, clock_timestamp() + %(lease)s * interval '1 second')
ON CONFLICT (namespace, key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE t.expires_at <= clock_timestamp() OR t.owner = excluded.owner
RETURNING owner
"""
_STATE = "SELECT owner FROM kep_idempotency WHERE namespace = %(ns)s AND key = %(key)s"
_COMPLETE = """
INSERT INTO kep_idempotency AS t (namespace, key, owner, expires_at)
VALUES (%(ns)s, %(key)s, '', clock_timestamp() + %(ttl)s * interval '1 second')
ON CONFLICT (namespace, key) DO UPDATE SET owner = '', expires_at = excluded.expires_at
"""
_COMPLETE_IF_OURS = """
UPDATE kep_idempotency SET owner = '', expires_at = clock_timestamp() + %(ttl)s * interval '1 second'
WHERE namespace = %(ns)s AND key = %(key)s AND owner = %(owner)s
"""
_RELEASE = "DELETE FROM kep_idempotency WHERE namespace = %(ns)s AND key = %(key)s AND owner = %(owner)s"


class PostgresStore(IdempotencyStore):
    def __init__(self, dsn: str, namespace: str, *, ttl_s: float, lease_s: float) -> None:
        super().__init__(namespace, ttl_s=ttl_s, lease_s=lease_s)
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - optional dependency
            raise IdempotencyStoreError(
                "the postgres store needs the 'psycopg' package: pip install 'kep-kafka[postgres]'"
            ) from exc
        self._psycopg = psycopg
        self._dsn = dsn
        self._conns: ThreadConnections[Any] = ThreadConnections(
            lambda: psycopg.connect(dsn, autocommit=True, connect_timeout=5), lambda conn: conn.close()
        )
        self._run(lambda conn: conn.execute(_SCHEMA))

    def _conn(self) -> Any:
        return self._conns.get(usable=lambda conn: not conn.closed)

    def _run(self, fn: Any) -> Any:
        try:
            return fn(self._conn())
        except self._psycopg.Error as exc:
            self._drop_broken()
            raise IdempotencyStoreError(f"postgres idempotency store: {exc}") from exc

    def _drop_broken(self) -> None:
        conn = self._conns.current()
        if conn is not None and (conn.closed or conn.broken):
            self._conns.forget()

    def _params(self, key: str) -> dict[str, Any]:
        return {
            "ns": self.namespace,
            "key": key,
            "owner": self.owner,
            "lease": self.lease_s,
            "ttl": self.ttl_s,
        }

    def claim(self, key: str) -> ClaimState:
        params = self._params(key)

        def go(conn: Any) -> ClaimState:
            if conn.execute(_CLAIM, params).fetchone() is not None:
                return ClaimState.NEW
            row = conn.execute(_STATE, params).fetchone()
            if row is None:
                return ClaimState.BUSY  # released between the statements; the caller retries
            return ClaimState.DONE if row[0] == "" else ClaimState.BUSY

        result: ClaimState = self._run(go)
        return result

    def complete(self, key: str) -> None:
        self._run(lambda conn: conn.execute(_COMPLETE, self._params(key)))

    def release(self, key: str) -> None:
        self._run(lambda conn: conn.execute(_RELEASE, self._params(key)))

    @contextmanager
    def transaction(self, key: str) -> Iterator[Any]:
        """Yield this thread's connection inside a transaction; the key is completed in it before COMMIT."""
        try:
            conn = self._conn()
            tx = conn.transaction()
            tx.__enter__()
        except self._psycopg.Error as exc:
            self._drop_broken()
            raise IdempotencyStoreError(f"postgres idempotency store: {exc}") from exc
        try:
            yield conn
            cur = conn.execute(_COMPLETE_IF_OURS, self._params(key))
            if cur.rowcount != 1:
                raise AlreadyCompletedError(f"idempotency key {key!r} is no longer claimed by this worker")
        except BaseException as exc:
            tx.__exit__(type(exc), exc, exc.__traceback__)
            if isinstance(exc, self._psycopg.Error):
                self._drop_broken()
                raise IdempotencyStoreError(f"postgres idempotency store: {exc}") from exc
            raise
        try:
            tx.__exit__(None, None, None)
        except self._psycopg.Error as exc:
            self._drop_broken()
            raise IdempotencyStoreError(f"postgres idempotency store: commit failed: {exc}") from exc

    @property
    def supports_transactions(self) -> bool:
        return True

    def close(self) -> None:
        self._conns.close_all()
