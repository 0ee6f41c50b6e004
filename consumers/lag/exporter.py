"""``LagExporter``: polls consumer-group lag in a background thread and serves it to Prometheus and as JSON.

Each poll (``LagMonitor.poll``) replaces the published ``PollState`` as a whole; a scrape only reads it, so it
is fast whatever the cluster does. Health: live while the poll thread finished a poll within ``health_ttl_s``
(a failed poll counts: the thread is alive), ready once a poll has succeeded.

>>> with LagExporter(KafkaSettings(), group_filter="billing.*", poll_interval_s=10, window_s=120) as exporter:
...     exporter.serve(port=9401)
...     exporter.start()
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType

from prometheus_client import CollectorRegistry

from kep.consumers.lag.collector import LagCollector, PollState
from kep.consumers.lag.errors import LagError
from kep.consumers.lag.monitor import LagMonitor
from kep.consumers.lag.probe import IsolationLevel
from kep.consumers.lag.routes import PREFIX, groups_handler
from kep.consumers.lag.snapshot import LagSnapshot
from kep.consumers.metrics import Health, MetricsServer, RouteHandler
from kep.topology.settings import KafkaSettings

_MAX_ASKED = 1024
"""Unknown group names remembered for ``not_polled_yet`` (the oldest are forgotten)."""


class ExporterHealth(Health):
    """``Health`` for the exporter: live while polls keep finishing, ready after the first successful one."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(ttl_s, clock)
        self._polled_ok = threading.Event()
        self._shutting_down = threading.Event()

    def stopping(self) -> None:
        super().stopping()
        self._shutting_down.set()

    def polled(self, ok: bool) -> None:
        self.beat()
        if ok:
            self._polled_ok.set()

    def ready(self) -> tuple[bool, str]:
        if self._shutting_down.is_set():
            return False, "stopping"
        if not self._polled_ok.is_set():
            return False, "no successful poll yet"
        return True, "polled"


class LagExporter:
    """The standalone lag exporter: a ``LagMonitor`` on a timer, a ``LagCollector`` and the JSON routes."""

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        group_filter: str | re.Pattern[str] | None = None,
        poll_interval_s: float = 10.0,
        window_s: float = 120.0,
        probe_timeout_s: float = 5.0,
        isolation_level: IsolationLevel | None = None,
        health_ttl_s: float | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if poll_interval_s <= 0:
            raise LagError(f"poll interval must be > 0 seconds, got {poll_interval_s}")
        if window_s < poll_interval_s:
            raise LagError(
                f"status window ({window_s}s) must be at least the poll interval ({poll_interval_s}s)"
            )
        self.poll_interval_s = poll_interval_s
        self._clock = clock
        ttl = health_ttl_s if health_ttl_s is not None else max(30.0, 3 * poll_interval_s + probe_timeout_s)
        self.health = ExporterHealth(ttl, clock)
        self.registry = registry if registry is not None else CollectorRegistry()
        self._monitor = LagMonitor(
            kafka,
            group_filter=group_filter,
            window_s=window_s,
            timeout_s=probe_timeout_s,
            isolation_level=isolation_level,
            clock=clock,
            wall_clock=wall_clock,
        )
        self._state = PollState()
        self._state_lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()  # set to poll before the interval is over (and on stop)
        self._asked: dict[str, float] = {}  # groups asked for before a poll saw them: wall time first asked
        self._wall = wall_clock
        self._thread: threading.Thread | None = None
        self._server: MetricsServer | None = None
        self.registry.register(LagCollector(self.latest))

    def latest(self) -> PollState:
        """The state published by the last poll (an immutable value)."""
        with self._state_lock:
            return self._state

    @property
    def snapshot(self) -> LagSnapshot | None:
        return self.latest().snapshot

    def poll_once(self) -> LagSnapshot:
        """Poll now and publish the result; returns the published snapshot (``error`` set when it failed)."""
        with self._poll_lock:
            snapshot = self._monitor.poll_or_failed(self.latest().snapshot)
            ok = snapshot.error is None
            with self._state_lock:
                previous = self._state
                self._state = replace(
                    previous,
                    snapshot=snapshot,
                    last_poll_at=snapshot.taken_at,
                    last_duration_s=snapshot.duration_s,
                    errors_total=previous.errors_total + (not ok),
                    last_success_at=snapshot.taken_at if ok else previous.last_success_at,
                )
            self.health.polled(ok)
            return snapshot

    # -- background thread ------------------------------------------------------------------------------
    def start(self) -> LagExporter:
        """Start polling every ``poll_interval_s`` in a daemon thread (the first poll runs at once)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="kep-lag-exporter", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            started = self._clock()
            self.poll_once()
            self._wake.wait(max(0.0, self.poll_interval_s - (self._clock() - started)))
            self._wake.clear()

    def not_polled_yet(self, group: str) -> bool:
        """True while no poll that started after ``group`` was first asked for has completed (and the filter
        matches it): the group may just be joining. Asks the poll thread to poll now."""
        pattern = self._monitor.group_filter
        if pattern is not None and pattern.fullmatch(group) is None:
            return False
        now = self._wall()
        with self._state_lock:
            asked = self._asked.setdefault(group, now)
            while len(self._asked) > _MAX_ASKED:
                del self._asked[next(iter(self._asked))]
            snapshot = self._state.snapshot
        if snapshot is not None and snapshot.taken_at - snapshot.duration_s >= asked:
            return False  # a poll that began after the question did not see the group either
        self._wake.set()
        return True

    # -- HTTP -------------------------------------------------------------------------------------------
    def routes(self) -> dict[str, RouteHandler]:
        """The JSON routes to add to a ``MetricsServer``: ``/groups`` and ``/groups/{group}``."""
        return {PREFIX: groups_handler(self.latest, self.not_polled_yet)}

    def serve(self, port: int = 9401, host: str = "0.0.0.0") -> MetricsServer:
        """Serve ``/metrics``, ``/healthz``, ``/readyz`` and ``/groups`` on ``host:port`` (0: a free port)."""
        if self._server is None:
            self._server = MetricsServer(
                self.registry, self.health, port=port, host=host, routes=self.routes()
            )
            self._server.start()
        return self._server

    # -- lifecycle --------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the poll thread (waits for a running poll) and the HTTP server; close the clients."""
        self._stop.set()
        self._wake.set()
        self.health.stopping()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        if self._server is not None:
            self._server.stop()
            self._server = None
        with self._poll_lock:
            self._monitor.close()

    def __enter__(self) -> LagExporter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
