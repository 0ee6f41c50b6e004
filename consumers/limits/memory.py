"""Limits kept in this process: one worker (tests, development); replicas do not share them."""

from __future__ import annotations

import threading
import time

from kep.consumers.limits.gcra import gcra
from kep.consumers.limits.store import Clock, LimitStore


class MemoryLimitStore(LimitStore):
    def __init__(self, namespace: str, *, clock: Clock | None = None) -> None:
        super().__init__(namespace, clock=clock)
        self._now = clock or time.time
        self._lock = threading.Lock()
        self._tats: dict[str, float] = {}
        self._leases: dict[str, dict[str, float]] = {}  # key -> holder -> lease end

    def take(self, key: str, interval: float, tolerance: float) -> float:
        with self._lock:
            now = self._now()
            wait, tat = gcra(self._tats.get(key), now, interval, tolerance)
            if tat is not None:
                self._tats[key] = tat
                if len(self._tats) > 100_000:  # forget keys whose bucket is full again
                    self._tats = {k: v for k, v in self._tats.items() if v > now}
            return wait

    def enter(self, key: str, slots: int, lease_s: float, holder: str) -> float:
        with self._lock:
            now = self._now()
            leases = {h: end for h, end in self._leases.get(key, {}).items() if end > now}
            if len(leases) < slots:
                leases[holder] = now + lease_s
                self._leases[key] = leases
                return 0.0
            self._leases[key] = leases
            return max(min(leases.values()) - now, 0.001)

    def leave(self, key: str, holder: str) -> None:
        with self._lock:
            leases = self._leases.get(key)
            if leases is not None:
                leases.pop(holder, None)
                if not leases:
                    del self._leases[key]
