"""Redis idempotency store: shared by every replica; claims are leases (keys with a TTL), so a dead worker's
claim expires and the event runs again, while two live replicas racing after a rebalance never both run it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from kep.consumers.errors import IdempotencyStoreError
from kep.consumers.idempotency.base import AlreadyCompletedError, ClaimState, IdempotencyStore, Key, digest

# KEYS[1] = the key; ARGV = owner, lease ms. Returns 0 NEW, 1 DONE, 2 BUSY.
_CLAIM_LUA = """
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], 'c:' .. ARGV[1], 'PX', ARGV[2])
  return 0
end
if v == 'd' then return 1 end
if v == 'c:' .. ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 0
end
return 2
"""
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == 'c:' .. ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_STATES = {0: ClaimState.NEW, 1: ClaimState.DONE, 2: ClaimState.BUSY}


class RedisStore(IdempotencyStore):
    def __init__(self, url: str, namespace: str, *, ttl_s: float, lease_s: float) -> None:
        super().__init__(namespace, ttl_s=ttl_s, lease_s=lease_s)
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - optional dependency
            raise IdempotencyStoreError(
                "the redis store needs the 'redis' package: pip install 'kep-kafka[redis]'"
            ) from exc
        self._redis_errors: tuple[type[BaseException], ...] = (redis.RedisError,)
        self._watch_error = redis.WatchError
        self._where = _where(url)
        self._client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._claim = self._client.register_script(_CLAIM_LUA)
        self._release = self._client.register_script(_RELEASE_LUA)
        self._prefix = f"kep:idem:{namespace}:"
        self._lease_ms = int(lease_s * 1000)
        self._ttl_ms = int(ttl_s * 1000)
        self._mine = f"c:{self.owner}".encode()
        self.check()

    def _name(self, key: Key) -> str:
        return self._prefix + digest(key)

    def _error(self, exc: BaseException, doing: str = "") -> IdempotencyStoreError:
        return IdempotencyStoreError(f"redis idempotency store at {self._where}{doing}: {exc}")

    def check(self) -> None:
        try:
            self._client.ping()
        except self._redis_errors as exc:
            raise self._error(exc) from exc

    def claim(self, key: Key) -> ClaimState:
        try:
            return _STATES[int(self._claim(keys=[self._name(key)], args=[self.owner, self._lease_ms]))]
        except self._redis_errors as exc:
            raise self._error(exc) from exc

    def complete(self, key: Key) -> None:
        try:
            self._client.set(self._name(key), "d", px=self._ttl_ms)
        except self._redis_errors as exc:
            raise self._error(exc) from exc

    def release(self, key: Key) -> None:
        try:
            self._release(keys=[self._name(key)], args=[self.owner])
        except self._redis_errors as exc:
            raise self._error(exc) from exc

    # -- batches: one pipeline (one round trip) for all the keys --------------------------------------------------
    @property
    def batches(self) -> bool:
        return True

    def claim_many(self, keys: Sequence[Key]) -> list[ClaimState]:
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    self._claim(keys=[self._name(key)], args=[self.owner, self._lease_ms], client=pipe)
                answers = pipe.execute()
        except self._redis_errors as exc:
            raise self._error(exc) from exc
        return [_STATES[int(answer)] for answer in answers]

    def complete_many(self, keys: Sequence[Key]) -> None:
        self.settle_many(keys, ())

    def release_many(self, keys: Sequence[Key]) -> None:
        self.settle_many((), keys)

    def settle_many(self, done: Sequence[Key], released: Sequence[Key]) -> None:
        """One pipeline: the releases, then the completions."""
        if not done and not released:
            return
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for key in released:
                    self._release(keys=[self._name(key)], args=[self.owner], client=pipe)
                for key in done:
                    pipe.set(self._name(key), "d", px=self._ttl_ms)
                pipe.execute()
        except self._redis_errors as exc:
            raise self._error(exc) from exc

    @contextmanager
    def transaction(self, key: Key) -> Iterator[Any]:
        """Yield a MULTI pipeline; the handler queues its writes, the key's completion is queued last, and EXEC
        applies all or nothing. If the key changed meanwhile (WATCH), nothing is applied.

        WATCH fails in two ways that must not be confused: the key changed, or redis-py lost the connection
        while watching (it raises ``WatchError`` for both). The key is read again to tell: only a key that is
        done makes the event a duplicate; anything else (still our claim, another's claim, gone, or Redis
        unreachable) is a store failure, waited out and run again.
        """
        name = self._name(key)
        try:
            with self._client.pipeline(transaction=True) as pipe:
                pipe.watch(name)  # type: ignore[no-untyped-call]
                value = pipe.get(name)
                if value != self._mine:
                    raise self._not_ours(value)
                pipe.multi()
                yield pipe
                pipe.set(name, "d", px=self._ttl_ms)
                pipe.execute()
        except self._watch_error as exc:
            raise self._after_watch_failure(name, exc) from exc
        except self._redis_errors as exc:
            raise self._error(exc) from exc

    def _not_ours(self, value: object) -> Exception:
        if value == b"d":
            return AlreadyCompletedError("the idempotency key was completed meanwhile")
        return IdempotencyStoreError(
            "redis idempotency store: this worker's claim was lost (its lease expired); the event runs again"
        )

    def _after_watch_failure(self, name: str, exc: BaseException) -> Exception:
        try:
            value = self._client.get(name)
        except self._redis_errors as again:
            return self._error(again, " (after a failed transaction)")
        if value == b"d":
            return AlreadyCompletedError("the idempotency key was completed meanwhile")
        return self._error(exc, " (transaction not applied)")

    @property
    def supports_transactions(self) -> bool:
        return True

    def close(self) -> None:
        self._client.close()


def _where(url: str) -> str:
    """``host:port/db`` of a Redis URL, never its credentials."""
    rest = url.split("://", 1)[-1]
    return rest.rsplit("@", 1)[-1].split("?", 1)[0]
