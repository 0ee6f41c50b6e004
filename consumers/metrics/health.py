"""``Health``: liveness and readiness of a worker, fed by the poll loop and the rebalance callbacks.

Live: the poll loop beat within ``ttl_s`` and no rebalance has been running for longer than ``ttl_s``.
Ready: connected to the cluster, owns partitions (or is idle by design, e.g. more workers than partitions),
not rebalancing and not stopping. Thread-safe; the clock is injected so tests control time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from kep.consumers.metrics.errors import MetricsError


class Health:
    """Liveness and readiness state. Every method may be called from any thread."""

    def __init__(self, ttl_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        if ttl_s <= 0:
            raise MetricsError(f"health ttl_s must be > 0, got {ttl_s}")
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_beat = clock()  # a worker that has just started counts as live for one ttl
        self._rebalancing_since: float | None = None
        self._connected = False
        self._assigned = 0
        self._idle_by_design = False
        self._stopping = False

    def beat(self) -> None:
        """The poll loop ran."""
        now = self._clock()
        with self._lock:
            self._last_beat = now

    def rebalancing(self, active: bool) -> None:
        """A rebalance started (``True``) or finished (``False``)."""
        now = self._clock()
        with self._lock:
            if not active:
                self._rebalancing_since = None
            elif self._rebalancing_since is None:
                self._rebalancing_since = now

    def connected(self, ok: bool) -> None:
        with self._lock:
            self._connected = ok

    def assigned(self, count: int) -> None:
        with self._lock:
            self._assigned = count

    def idle_by_design(self, idle: bool) -> None:
        """No partitions is fine (e.g. more replicas than partitions): stay ready without an assignment."""
        with self._lock:
            self._idle_by_design = idle

    def stopping(self) -> None:
        """Shutdown began: not ready any more (still live while draining)."""
        with self._lock:
            self._stopping = True

    def live(self) -> tuple[bool, str]:
        """``(ok, reason)``: the poll loop beat within the ttl and no rebalance is stuck."""
        now = self._clock()
        with self._lock:
            silent = now - self._last_beat
            rebalancing = None if self._rebalancing_since is None else now - self._rebalancing_since
        if silent > self.ttl_s:
            return False, f"poll loop silent for {silent:.1f}s (ttl {self.ttl_s:g}s)"
        if rebalancing is not None and rebalancing > self.ttl_s:
            return False, f"rebalancing for {rebalancing:.1f}s (ttl {self.ttl_s:g}s)"
        return True, f"poll loop beat {silent:.1f}s ago"

    def ready(self) -> tuple[bool, str]:
        """``(ok, reason)``: connected, owns partitions (or idle by design), not rebalancing, not stopping."""
        with self._lock:
            stopping, connected = self._stopping, self._connected
            rebalancing = self._rebalancing_since is not None
            assigned, idle = self._assigned, self._idle_by_design
        if stopping:
            return False, "stopping"
        if not connected:
            return False, "not connected to the cluster"
        if rebalancing:
            return False, "rebalancing"
        if assigned <= 0 and not idle:
            return False, "no partitions assigned"
        return True, f"{assigned} partitions assigned" if assigned > 0 else "idle by design"
