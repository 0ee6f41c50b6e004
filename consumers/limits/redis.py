"""Limits in Redis: each decision is one Lua script, atomic on the server, timed by the server's clock."""

from __future__ import annotations

from typing import Any

from kep.consumers.limits.errors import LimitStoreError
from kep.consumers.limits.store import Clock, LimitStore

# The server's clock unless the caller gave one (ARGV "" = none).
_NOW = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""
# KEYS[1] the TAT; ARGV: now, interval, tolerance. Returns the wait as a string ("0" allowed): gcra.py.
_TAKE = (
    _NOW
    + """
local interval, tolerance = tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local allow_at = tat - tolerance
if allow_at > now then return tostring(allow_at - now) end
local new = tat + interval
redis.call('SET', KEYS[1], string.format('%.6f', new), 'PX', math.ceil((new - now) * 1000) + 1000)
return '0'
"""
)
# KEYS[1] a sorted set holder -> lease end; ARGV: now, slots, lease seconds, holder.
_ENTER = (
    _NOW
    + """
local slots, lease = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < slots then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 1000) + 1000)
  return '0'
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = tonumber(first[2]) - now
if wait < 0.001 then wait = 0.001 end
return tostring(wait)
"""
)


class RedisLimitStore(LimitStore):
    def __init__(self, url: str, namespace: str, *, clock: Clock | None = None) -> None:
        super().__init__(namespace, clock=clock)
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - optional dependency
            raise LimitStoreError(
                "the redis limit store needs the 'redis' package: pip install 'kep-kafka[redis]'"
            ) from exc
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError,)
        self._where = url.split("://", 1)[-1].rsplit("@", 1)[-1].split("?", 1)[0]  # never the credentials
        self._client: Any = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._take = self._client.register_script(_TAKE)
        self._enter = self._client.register_script(_ENTER)
        self._prefix = f"kep:limit:{namespace}:"

    def _now(self) -> str:
        return repr(self.clock()) if self.clock is not None else ""

    def _call(self, script: Any, key: str, *args: object) -> float:
        try:
            return float(script(keys=[key], args=[self._now(), *args]))
        except self._errors as exc:
            raise LimitStoreError(f"redis limit store at {self._where}: {exc}") from exc

    def take(self, key: str, interval: float, tolerance: float) -> float:
        return self._call(self._take, self._prefix + "r:" + key, repr(interval), repr(tolerance))

    def enter(self, key: str, slots: int, lease_s: float, holder: str) -> float:
        return self._call(self._enter, self._prefix + "c:" + key, slots, repr(lease_s), holder)

    def leave(self, key: str, holder: str) -> None:
        try:
            self._client.zrem(self._prefix + "c:" + key, holder)
        except self._errors as exc:
            raise LimitStoreError(f"redis limit store at {self._where}: {exc}") from exc

    def close(self) -> None:
        self._client.close()
