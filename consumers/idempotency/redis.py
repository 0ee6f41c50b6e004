"""Redis idempotency store: shared by every replica; claims are leases (keys with a TTL), so a dead worker's
claim expires and the event runs again, while two live replicas racing after a rebalance never both run it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kep.consumers.errors import IdempotencyStoreError
from kep.consumers.idempotency.base import AlreadyCompletedError, ClaimState, IdempotencyStore

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
        self._client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._claim = self._client.register_script(_CLAIM_LUA)
        self._release = self._client.register_script(_RELEASE_LUA)
        self._prefix = f"kep:idem:{namespace}:"
        self._lease_ms = int(lease_s * 1000)
        self._ttl_ms = int(ttl_s * 1000)

    def claim(self, key: str) -> ClaimState:
        try:
            return _STATES[int(self._claim(keys=[self._prefix + key], args=[self.owner, self._lease_ms]))]
        except self._redis_errors as exc:
            raise IdempotencyStoreError(f"redis idempotency store: {exc}") from exc

    def complete(self, key: str) -> None:
        try:
            self._client.set(self._prefix + key, "d", px=self._ttl_ms)
        except self._redis_errors as exc:
            raise IdempotencyStoreError(f"redis idempotency store: {exc}") from exc

    def release(self, key: str) -> None:
        try:
            self._release(keys=[self._prefix + key], args=[self.owner])
        except self._redis_errors as exc:
            raise IdempotencyStoreError(f"redis idempotency store: {exc}") from exc

    @contextmanager
    def transaction(self, key: str) -> Iterator[Any]:
        """Yield a MULTI pipeline; the handler queues its writes, the key's completion is queued last, and EXEC
        applies all or nothing. If the claim changed hands meanwhile (WATCH), nothing is applied."""
        name = self._prefix + key
        try:
            with self._client.pipeline(transaction=True) as pipe:
                pipe.watch(name)  # type: ignore[no-untyped-call]
                if pipe.get(name) != f"c:{self.owner}".encode():
                    raise AlreadyCompletedError(
                        f"idempotency key {key!r} is no longer claimed by this worker"
                    )
                pipe.multi()
                yield pipe
                pipe.set(name, "d", px=self._ttl_ms)
                pipe.execute()
        except self._watch_error as exc:
            raise AlreadyCompletedError(f"idempotency key {key!r} changed during the transaction") from exc
        except self._redis_errors as exc:
            raise IdempotencyStoreError(f"redis idempotency store: {exc}") from exc

    @property
    def supports_transactions(self) -> bool:
        return True

    def close(self) -> None:
        self._client.close()
