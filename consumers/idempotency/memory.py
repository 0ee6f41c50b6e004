"""In-process idempotency store with a TTL and a size bound. Not shared, not durable: tests and benchmarks.

The hot path takes no lock: single dict operations are atomic in CPython, and a claim is decided with one
``setdefault``. Eviction of the oldest keys, past the size bound, takes a lock and runs rarely. Keys are kept
as text: bytes are decoded as UTF-8 with surrogate escapes, so a key is the same key whether given as text or as
its UTF-8 bytes, as in the other stores, and any bytes of any length work.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from kep.consumers.idempotency.base import AlreadyCompletedError, ClaimState, IdempotencyStore, Key

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
        self._entries: dict[str, tuple[str, float]] = {}  # key -> (owner or _DONE, expires), oldest first
        self._lock = threading.Lock()
        self._max_keys = max_keys
        self._clock = clock

    def claim(self, key: Key) -> ClaimState:
        if type(key) is not str:
            key = _text(key)
        now = self._clock()
        entries = self._entries
        mine = (self.owner, now + self.lease_s)
        entry = entries.setdefault(key, mine)
        if entry is mine:
            if len(entries) > self._max_keys:
                self._evict()
            return ClaimState.NEW
        owner, expires = entry
        if expires > now:
            if owner == _DONE:
                return ClaimState.DONE
            if owner != self.owner:
                return ClaimState.BUSY
        entries[key] = mine  # expired, or ours already: (re)claim
        return ClaimState.NEW

    def _evict(self) -> None:
        with self._lock:
            excess = len(self._entries) - self._max_keys
            if excess > 0:
                for key in list(self._entries)[: max(excess, self._max_keys // 10)]:
                    self._entries.pop(key, None)

    def complete(self, key: Key) -> None:
        if type(key) is not str:
            key = _text(key)
        self._entries[key] = (_DONE, self._clock() + self.ttl_s)

    def release(self, key: Key) -> None:
        if type(key) is not str:
            key = _text(key)
        entry = self._entries.get(key)
        if entry is not None and entry[0] == self.owner:
            self._entries.pop(key, None)

    @contextmanager
    def transaction(self, key: Key) -> Iterator[None]:
        yield None
        if type(key) is not str:
            key = _text(key)
        entry = self._entries.get(key)
        if entry is not None and entry[0] == _DONE and entry[1] > self._clock():
            raise AlreadyCompletedError(f"idempotency key {key!r} was completed meanwhile")
        self.complete(key)

    @property
    def supports_transactions(self) -> bool:
        return True

    def __len__(self) -> int:
        return len(self._entries)


def _text(key: Key) -> str:
    return key.decode("utf-8", "surrogateescape") if isinstance(key, bytes) else str(key)
