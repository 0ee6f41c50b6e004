"""``ProbeCache``: runs a lag probe at most once per interval, one at a time, with a bounded wait.

The probe (``consumers.lag.probe.LagProbe.probe``) reads the log with a throw-away consumer, which takes from
milliseconds to seconds. Scrapes must stay fast, so the probe runs in a daemon thread: a scrape waits at most
``timeout_s`` for it, and a probe that takes longer serves the next scrape.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from kep.consumers.metrics.state import Probe, ProbeResult, TopicPartitionKey

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class _Cached:
    result: ProbeResult
    at: float  # monotonic time the probe answered


class ProbeCache:
    """Runs a probe at most once per ``interval_s``, one at a time, in a daemon thread.

    ``lookup`` waits at most ``timeout_s`` for the probe it started or found running, and otherwise answers
    from the last results (each dropped ``stale_after_s`` after it was measured)."""

    def __init__(
        self,
        probe: Probe,
        *,
        interval_s: float = 5.0,
        timeout_s: float = 2.0,
        stale_after_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = probe
        self._interval = interval_s
        self._timeout = timeout_s
        self._stale_after = stale_after_s if stale_after_s is not None else max(4 * interval_s, 30.0)
        self._clock = clock
        self._lock = threading.Lock()
        self._results: dict[TopicPartitionKey, _Cached] = {}
        self._asked: frozenset[TopicPartitionKey] = frozenset()
        self._started_at: float | None = None
        self._running: threading.Event | None = None
        self.last_success_wall: float | None = None

    def lookup(self, positions: Mapping[TopicPartitionKey, int]) -> dict[TopicPartitionKey, ProbeResult]:
        """Results for the partitions of ``positions`` (absent: unknown), probing first when one is due."""
        if not positions:
            return {}
        done = self._maybe_start(positions)
        if done is not None:
            done.wait(self._timeout)
        now = self._clock()
        with self._lock:
            return {
                key: cached.result
                for key in positions
                if (cached := self._results.get(key)) is not None and now - cached.at <= self._stale_after
            }

    def _maybe_start(self, positions: Mapping[TopicPartitionKey, int]) -> threading.Event | None:
        now = self._clock()
        with self._lock:
            if self._running is not None:
                return self._running
            due = self._started_at is None or now - self._started_at >= self._interval
            if not due and set(positions) <= self._asked:
                return None
            done = threading.Event()
            self._running = done
            self._started_at = now
            self._asked = frozenset(positions)
        snapshot = dict(positions)
        threading.Thread(target=self._run, args=(snapshot, done), name="kep-lag-probe", daemon=True).start()
        return done

    def _run(self, positions: dict[TopicPartitionKey, int], done: threading.Event) -> None:
        try:
            answers = self._probe(positions)
        except Exception as exc:  # a failed probe must never break a scrape
            log.warning("lag probe failed", error=str(exc), error_type=type(exc).__name__)
            answers = {}
        now = self._clock()
        with self._lock:
            for key, result in answers.items():
                self._results[key] = _Cached(result, now)
            for key in [k for k, c in self._results.items() if now - c.at > self._stale_after]:
                del self._results[key]
            if answers:
                self.last_success_wall = time.time()
            self._running = None
        done.set()
