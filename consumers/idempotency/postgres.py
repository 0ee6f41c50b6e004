"""PostgreSQL idempotency store: shared by every replica, and transactional.

``transaction(key)`` yields a connection inside a transaction: the handler writes its rows there and the key is
completed in the same transaction, so a database side effect happens exactly once even across crashes and
redeliveries. Times come from the database clock so replicas on other hosts agree on lease expiry.

Keys are stored as their digest (``base.digest``): a text column takes neither NUL nor (in the primary key's
index) values over about 2.7 KB, and a key is whatever bytes the producer sent.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from kep.consumers.errors import IdempotencyStoreError
from kep.consumers.idempotency._connections import ThreadConnections
from kep.consumers.idempotency.base import AlreadyCompletedError, ClaimState, IdempotencyStore, Key, digest

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
# Batches: one statement for many keys, taken in key order so that two workers never deadlock on them.
_CLAIM_MANY = """
INSERT INTO kep_idempotency AS t (namespace, key, owner, expires_at)
SELECT %(ns)s, k, %(owner)s, clock_timestamp() + %(lease)s * interval '1 second'
FROM unnest(%(keys)s::text[]) AS k ORDER BY k
ON CONFLICT (namespace, key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE t.expires_at <= clock_timestamp() OR t.owner = excluded.owner
RETURNING key
"""
_STATE_MANY = (
    "SELECT key, owner FROM kep_idempotency WHERE namespace = %(ns)s AND key = ANY(%(keys)s::text[])"
)
_COMPLETE_MANY = """
INSERT INTO kep_idempotency AS t (namespace, key, owner, expires_at)
SELECT %(ns)s, k, '', clock_timestamp() + %(ttl)s * interval '1 second'
FROM unnest(%(keys)s::text[]) AS k ORDER BY k
ON CONFLICT (namespace, key) DO UPDATE SET owner = '', expires_at = excluded.expires_at
"""
_RELEASE_MANY = """
DELETE FROM kep_idempotency WHERE namespace = %(ns)s AND key = ANY(%(keys)s::text[]) AND owner = %(owner)s
"""


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
            self._drop_broken(exc)
            raise IdempotencyStoreError(f"postgres idempotency store: {exc}") from exc

    def _drop_broken(self, exc: BaseException | None = None) -> None:
        """Throw this thread's connection away when it cannot serve the next statement.

        Closed or broken, but also wedged: a connection reset in the middle of a result can leave libpq with
        a command "already in progress" and the connection not marked broken; every later statement then
        fails the same way, for ever. After an error of the connection itself, or when it is not idle, it is
        closed and the next statement opens a new one.
        """
        conn = self._conns.current()
        if conn is None:
            return
        wedged = isinstance(exc, self._psycopg.OperationalError | self._psycopg.InterfaceError)
        try:
            idle = conn.info.transaction_status == self._psycopg.pq.TransactionStatus.IDLE
        except Exception:  # noqa: BLE001 - a connection that cannot say is not usable either
            idle = False
        if conn.closed or conn.broken or wedged or not idle:
            try:
                conn.close()
            except Exception:  # noqa: BLE001, S110 - it is being thrown away
                pass
            self._conns.forget()

    def _params(self, key: Key) -> dict[str, Any]:
        return {
            "ns": self.namespace,
            "key": digest(key),
            "owner": self.owner,
            "lease": self.lease_s,
            "ttl": self.ttl_s,
        }

    def check(self) -> None:
        self._run(lambda conn: conn.execute("SELECT 1"))

    def claim(self, key: Key) -> ClaimState:
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

    def complete(self, key: Key) -> None:
        self._run(lambda conn: conn.execute(_COMPLETE, self._params(key)))

    def release(self, key: Key) -> None:
        self._run(lambda conn: conn.execute(_RELEASE, self._params(key)))

    # -- batches: one statement (one round trip) for all the keys ------------------------------------------------
    @property
    def batches(self) -> bool:
        return True

    def _many(self, keys: Sequence[Key]) -> tuple[list[str], dict[str, Any]]:
        names = [digest(key) for key in keys]
        params = {"ns": self.namespace, "keys": names, "owner": self.owner}
        return names, {**params, "lease": self.lease_s, "ttl": self.ttl_s}

    def claim_many(self, keys: Sequence[Key]) -> list[ClaimState]:
        names, params = self._many(keys)

        def go(conn: Any) -> list[ClaimState]:
            claimed = {row[0] for row in conn.execute(_CLAIM_MANY, params).fetchall()}
            if len(claimed) == len(names):
                return [ClaimState.NEW] * len(names)
            owners = dict(conn.execute(_STATE_MANY, params).fetchall())
            answers = []
            for name in names:
                if name in claimed:
                    answers.append(ClaimState.NEW)
                else:  # absent: released between the statements; BUSY makes the caller look again
                    answers.append(ClaimState.DONE if owners.get(name) == "" else ClaimState.BUSY)
            return answers

        result: list[ClaimState] = self._run(go)
        return result

    def complete_many(self, keys: Sequence[Key]) -> None:
        _, params = self._many(keys)
        self._run(lambda conn: conn.execute(_COMPLETE_MANY, params))

    def release_many(self, keys: Sequence[Key]) -> None:
        _, params = self._many(keys)
        self._run(lambda conn: conn.execute(_RELEASE_MANY, params))

    def settle_many(self, done: Sequence[Key], released: Sequence[Key]) -> None:
        def go(conn: Any) -> None:  # one connection, the statements back to back
            if released:
                conn.execute(_RELEASE_MANY, self._many(released)[1])
            if done:
                conn.execute(_COMPLETE_MANY, self._many(done)[1])

        self._run(go)

    @contextmanager
    def transaction(self, key: Key) -> Iterator[Any]:
        """Yield this thread's connection inside a transaction; the key is completed in it before COMMIT.

        A failure of the connection (killed, reset, server gone), before, during or after the handler's
        statements, is an ``IdempotencyStoreError``: the store is unavailable, the transaction did not happen,
        and the event is run again once the store answers. An error of the handler's own statements on a
        healthy connection (a constraint, a deadlock) is the handler's failure and is raised as it is.
        """
        params = self._params(key)
        try:
            conn = self._conn()
            tx = conn.transaction()
            tx.__enter__()
        except self._psycopg.Error as exc:
            self._drop_broken(exc)
            raise IdempotencyStoreError(f"postgres idempotency store: {exc}") from exc
        try:
            yield conn
        except BaseException as exc:
            rolled_back = self._rollback(tx, exc)
            if isinstance(exc, self._psycopg.Error) and (not rolled_back or self._connection_lost(conn)):
                self._drop_broken(exc)
                raise IdempotencyStoreError(f"postgres idempotency store: connection lost: {exc}") from exc
            raise
        try:
            done = conn.execute(_COMPLETE_IF_OURS, params).rowcount == 1
        except self._psycopg.Error as exc:
            self._rollback(tx, exc)
            self._drop_broken(exc)
            raise IdempotencyStoreError(f"postgres idempotency store: {exc}") from exc
        if not done:
            self._rollback(tx, None)
            raise self._not_ours(params)
        try:
            tx.__exit__(None, None, None)
        except self._psycopg.Error as exc:
            self._drop_broken(exc)
            raise IdempotencyStoreError(f"postgres idempotency store: commit failed: {exc}") from exc

    def _rollback(self, tx: Any, exc: BaseException | None) -> bool:
        """Roll the transaction back; False when that failed (the connection is then thrown away: nothing was
        committed on it)."""
        try:
            if exc is None:
                tx.__exit__(_Rollback, _Rollback(), None)
            else:
                tx.__exit__(type(exc), exc, exc.__traceback__)
        except _Rollback:
            pass
        except Exception as error:  # noqa: BLE001 - psycopg.Error, or a wedged connection's own complaint
            self._drop_broken(self._psycopg.OperationalError(str(error)))  # thrown away whatever its state
            return False
        return True

    def _connection_lost(self, conn: Any) -> bool:
        return bool(conn.closed or conn.broken)

    def _not_ours(self, params: dict[str, Any]) -> Exception:
        try:
            row = self._conn().execute(_STATE, params).fetchone()
        except self._psycopg.Error as exc:
            self._drop_broken(exc)
            return IdempotencyStoreError(f"postgres idempotency store: {exc}")
        if row is not None and row[0] == "":
            return AlreadyCompletedError("the idempotency key was completed meanwhile")
        return IdempotencyStoreError(
            "postgres idempotency store: this worker's claim was lost (its lease expired); the event runs again"
        )

    @property
    def supports_transactions(self) -> bool:
        return True

    def close(self) -> None:
        self._conns.close_all()


class _Rollback(Exception):
    """Rolls a psycopg transaction block back without an error of its own."""
