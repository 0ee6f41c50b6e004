"""In-process idempotency store with a TTL and a size bound. Not shared, not durable: tests and benchmarks."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from consumers.idempotency.base import AlreadyCompletedError, ClaimState, IdempotencyStore

_DONE = ""  # owner value of a completed key


class MemoryStore(IdempotencyStore):
    def __init__(
        self,
        namespace: str,
        *,
        ttl_s: float,
        lease_s: float,
        max_keys: int = 1_000_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(namespace, ttl_s=ttl_s, lease_s=lease_s)
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()  # key -> (owner or _DONE, expires)
        self._lock = threading.Lock()
        self._max_keys = max_keys
        self._clock = clock

    def claim(self, key: str) -> ClaimState:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[1] > now:
                owner = entry[0]
                if owner == _DONE:
                    return ClaimState.DONE
                if owner != self.owner:
                    return ClaimState.BUSY
            self._entries[key] = (self.owner, now + self.lease_s)
            self._entries.move_to_end(key)
            if len(self._entries) > self._max_keys:
                self._entries.popitem(last=False)
            return ClaimState.NEW

    def complete(self, key: str) -> None:
        with self._lock:
            self._entries[key] = (_DONE, self._clock() + self.ttl_s)
            self._entries.move_to_end(key)

    def release(self, key: str) -> None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] == self.owner:
                del self._entries[key]

    @contextmanager
    def transaction(self, key: str) -> Iterator[None]:
        yield None
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] == _DONE and entry[1] > self._clock():
                raise AlreadyCompletedError(f"idempotency key {key!r} was completed meanwhile")
        self.complete(key)

    @property
    def supports_transactions(self) -> bool:
        return True

    def __len__(self) -> int:
        return len(self._entries)
