"""The status store on Redis: a hash per event (field: group), a hash per batch and group with its counters,
and a hash of its members; every key expires ``ttl_s`` after its last change. Updates are Lua scripts, so a
member recorded twice counts once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kep.consumers.errors import IdempotencyStoreError
from kep.consumers.status.model import BatchProgress, EventStatus, MemberState
from kep.consumers.status.store import StatusStore

# KEYS[1] event hash; ARGV group, at_ms, record, ttl ms. The stored value is "<at_ms>|<record>".
_PUT_EVENT = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local at = tonumber(string.match(old, '^(%d+)|'))
  if at and at > tonumber(ARGV[2]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""
# KEYS: batch hash, members hash, groups set; ARGV: group, event id, state, total, now ms, ttl ms.
_RECORD_MEMBER = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'total', ARGV[4], 'handled', 0, 'dead', 0, 'announced_ms', 0, 'first_ms', ARGV[5])
end
local old = redis.call('HGET', KEYS[2], ARGV[2])
if old ~= ARGV[3] then
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
  if old == 'handled' then redis.call('HINCRBY', KEYS[1], 'handled', -1) end
  if old == 'dead_lettered' then redis.call('HINCRBY', KEYS[1], 'dead', -1) end
  if ARGV[3] == 'handled' then redis.call('HINCRBY', KEYS[1], 'handled', 1) end
  if ARGV[3] == 'dead_lettered' then redis.call('HINCRBY', KEYS[1], 'dead', 1) end
end
redis.call('HSET', KEYS[1], 'updated_ms', ARGV[5])
redis.call('SADD', KEYS[3], ARGV[1])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[6]) end
return redis.call('HMGET', KEYS[1], 'total', 'handled', 'dead', 'announced_ms', 'first_ms', 'updated_ms')
"""
_FIELDS = ("total", "handled", "dead", "announced_ms", "first_ms", "updated_ms")


class RedisStatusStore(StatusStore):
    def __init__(self, url: str, *, ttl_s: float) -> None:
        super().__init__(ttl_s=ttl_s)
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - optional dependency
            raise IdempotencyStoreError(
                "the redis status store needs 'redis': pip install 'kep-kafka[redis]'"
            ) from exc
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError,)
        self._client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._put = self._client.register_script(_PUT_EVENT)
        self._record = self._client.register_script(_RECORD_MEMBER)
        self._ttl_ms = int(ttl_s * 1000)
        self._where = url.split("@")[-1]

    def _fail(self, exc: BaseException) -> IdempotencyStoreError:
        return IdempotencyStoreError(f"redis status store {self._where}: {exc}")

    def put_events(self, records: Sequence[EventStatus]) -> None:
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for r in records:
                    self._put(
                        keys=[f"kep:status:{r.event_id}"],
                        args=[r.group, r.at_ms, r.to_json(), self._ttl_ms],
                        client=pipe,
                    )
                pipe.execute()
        except self._errors as exc:
            raise self._fail(exc) from exc

    def events(self, event_id: str) -> list[EventStatus]:
        try:
            found: dict[bytes, bytes] = self._client.hgetall(f"kep:status:{event_id}")  # type: ignore[assignment]
        except self._errors as exc:
            raise self._fail(exc) from exc
        return [EventStatus.from_json(value.split(b"|", 1)[1]) for _, value in sorted(found.items())]

    def record_member(
        self, group: str, batch_id: str, total: int, event_id: str, state: MemberState, now_ms: int
    ) -> BatchProgress:
        keys = [f"kep:batch:{batch_id}:{group}", f"kep:batchm:{batch_id}:{group}", f"kep:batchg:{batch_id}"]
        try:
            values = self._record(keys=keys, args=[group, event_id, state, total, now_ms, self._ttl_ms])
        except self._errors as exc:
            raise self._fail(exc) from exc
        return BatchProgress(batch_id, group, *(int(v) for v in values))

    def batches(self, batch_id: str) -> list[BatchProgress]:
        try:
            groups = sorted(g.decode() for g in self._client.smembers(f"kep:batchg:{batch_id}"))  # type: ignore[union-attr]
            found = []
            for group in groups:
                values: list[Any] = self._client.hmget(f"kep:batch:{batch_id}:{group}", list(_FIELDS))
                if values[0] is not None:
                    found.append(BatchProgress(batch_id, group, *(int(v or 0) for v in values)))
        except self._errors as exc:
            raise self._fail(exc) from exc
        return found

    def dead_members(self, group: str, batch_id: str) -> list[str]:
        try:
            members: dict[bytes, bytes] = self._client.hgetall(f"kep:batchm:{batch_id}:{group}")  # type: ignore[assignment]
        except self._errors as exc:
            raise self._fail(exc) from exc
        return sorted(k.decode() for k, v in members.items() if v == b"dead_lettered")

    def mark_announced(self, group: str, batch_id: str, now_ms: int) -> None:
        try:
            self._client.hset(f"kep:batch:{batch_id}:{group}", "announced_ms", now_ms)
        except self._errors as exc:
            raise self._fail(exc) from exc

    def close(self) -> None:
        self._client.close()
