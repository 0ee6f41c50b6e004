"""``OutboxRelay``: publishes the outbox table's rows in id order, then marks them sent.

One relay per database and table is active (``database.RelayLock``); the others stand by, report the backlog
and try again every ``lock_retry_s``. The active one reads up to ``batch_size`` unsent rows in id order, hands
them to its publisher (``publisher.py``: one Kafka transaction with a progress marker, or an idempotent
produce and flush) and marks them sent; then the next batch. Rows of one key are published in the order of
their ids, which is the order their transactions committed in when each was committed before the next began
(a handler's writes of one partition or key are). Nothing touches Kafka until the first row appears, so a
worker whose handlers never publish pays one cheap query per ``poll_interval_s``.

``KEP_OUTBOX_TEST_CRASH`` is for tests only: ``point:probability`` pairs, comma-separated, with ``point`` one of
``before-publish`` (rows read, nothing sent), ``in-transaction`` (records produced, not committed) and
``after-publish`` (published, not marked sent). At such a point the process kills itself with SIGKILL with
that probability. Never set it in production.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable

import structlog

from kep.producers.outbox.database import OutboxDatabase
from kep.producers.outbox.metrics import RelayMetrics
from kep.producers.outbox.publisher import (
    AtLeastOncePublisher,
    Publisher,
    TransactionalPublisher,
    ensure_state_topic,
)
from kep.producers.outbox.settings import OutboxSettings
from kep.producers.outbox.table import id_ranges
from kep.topology.settings import KafkaSettings

log = structlog.get_logger(__name__)

TEST_CRASH_ENV = "KEP_OUTBOX_TEST_CRASH"
_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)
_OBSERVE_EVERY_S = 1.0
_PURGE_EVERY_S = 60.0


class CrashHook:
    """The test-only fault points of ``KEP_OUTBOX_TEST_CRASH`` (see the module docstring)."""

    def __init__(self, spec: str | None) -> None:
        self.points: dict[str, float] = {}
        for part in (spec or "").split(","):
            point, _, chance = part.strip().partition(":")
            if point:
                self.points[point] = float(chance or 1.0)

    def __call__(self, point: str) -> None:
        chance = self.points.get(point)
        if chance is not None and random.random() < chance:
            os.write(2, f"kep outbox relay: test crash at {point}\n".encode())  # unbuffered: then SIGKILL
            os.kill(os.getpid(), signal.SIGKILL)


class OutboxRelay:
    """The relay of the outbox in the database at ``url`` (the idempotency store's URL)."""

    def __init__(
        self,
        url: str,
        kafka: KafkaSettings,
        settings: OutboxSettings | None = None,
        *,
        exactly_once: bool = True,
        metrics: RelayMetrics | None = None,
    ) -> None:
        self.settings = settings or OutboxSettings()
        self.kafka = kafka
        self.exactly_once = exactly_once
        self.db = OutboxDatabase(url, self.settings.table)
        self.lock = self.db.lock()
        self.metrics = metrics or RelayMetrics(self.settings.table)
        self._publisher: Publisher | None = None
        self._relay_id: str | None = None
        self._observed = 0.0
        self._purged = time.monotonic()
        self._crash = CrashHook(os.environ.get(TEST_CRASH_ENV))
        #: Called each turn of the loop, active or standing by (``Health.beat`` for ``/healthz``).
        self.beat: Callable[[], None] = lambda: None

    # -- the loop ------------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Relay until ``stop`` is set: active while holding the lock, standing by otherwise."""
        failures = 0
        try:
            while not stop.is_set():
                self.beat()
                try:
                    if self.lock.acquire():
                        self.metrics.active(True)
                        log.info("outbox relay active", table=self.settings.table, database=self.db.where)
                        self._serve(stop)
                    else:
                        self._observe(force=True)
                        stop.wait(self.settings.lock_retry_s)
                    failures = 0
                except Exception as exc:  # noqa: BLE001 - the relay outlives a broker or database outage
                    self._reset()
                    log.warning("outbox relay failed; trying again", error=str(exc))
                    stop.wait(_BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)])
                    failures += 1
        finally:
            self.close()

    def _serve(self, stop: threading.Event) -> None:
        while not stop.is_set() and self.lock.held():
            self.beat()
            if self.relay_once() == 0:
                stop.wait(self.settings.poll_interval_s)
        self._drop_publisher()  # if the lock comes back, a new publisher fences and recovers first
        self.metrics.active(False)

    def relay_once(self) -> int:
        """Publish one batch of unsent rows and mark them sent; how many (0: none waited). Needs the lock."""
        db, table = self.db, self.db.table
        if self._relay_id is None:
            self._relay_id = db.create()
        self._observe()
        rows = table.unsent(db.conn, self.settings.batch_size)
        if not rows:
            self._purge()
            return 0
        if self._publisher is None:
            self._publisher = self._open_publisher(self._relay_id)
            rows = table.unsent(db.conn, self.settings.batch_size)
            if not rows:
                return 0
        self._crash("before-publish")
        try:
            self._publisher.send(rows, self._crash)
        except Exception:
            self._drop_publisher()  # a new one recovers from the marker: the commit may have happened
            raise
        self._crash("after-publish")
        with db.transaction() as conn:
            table.mark_sent(conn, id_ranges([row.id for row in rows]))
        self.metrics.published(len(rows))
        return len(rows)

    def drain(self, timeout_s: float = 60.0) -> int:
        """Take the lock and relay until no row is unsent (tests, one-off runs); how many were published."""
        deadline = time.monotonic() + timeout_s
        while not self.lock.acquire():
            if time.monotonic() > deadline:
                raise TimeoutError("outbox relay: another relay holds the lock")
            time.sleep(0.1)  # sleep-ok: waiting for another relay's lock, bounded
        total = 0
        while (count := self.relay_once()) > 0:
            total += count
        return total

    # -- pieces --------------------------------------------------------------------------------------------
    def _open_publisher(self, relay_id: str) -> Publisher:
        if not self.exactly_once:
            return AtLeastOncePublisher(self.kafka)
        ensure_state_topic(self.kafka, self.settings.state_topic)
        publisher = TransactionalPublisher(
            self.kafka,
            relay_id,
            self.settings.state_topic,
            transaction_timeout_ms=self.settings.transaction_timeout_ms,
        )
        try:
            ranges = publisher.recover()
            if ranges:
                with self.db.transaction() as conn:
                    marked = self.db.table.mark_sent(conn, ranges)
                if marked:
                    log.info("outbox relay: rows published before a restart marked sent", rows=marked)
        except Exception:
            publisher.close()
            raise
        return publisher

    def _observe(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._observed < _OBSERVE_EVERY_S:
            return
        self._observed = now
        try:
            if self._relay_id is None and not force:
                return
            unsent, age = self.db.table.backlog(self.db.conn)
        except self.db.errors as exc:
            if "no such table" in str(exc) or "does not exist" in str(exc):
                self.db.reset()
                return  # no outbox yet: nothing waits
            raise
        self.metrics.backlog(unsent, age)

    def _purge(self) -> None:
        now = time.monotonic()
        if now - self._purged < _PURGE_EVERY_S:
            return
        self._purged = now
        with self.db.transaction() as conn:
            self.db.table.purge(conn, self.settings.retention_s)

    def _drop_publisher(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            try:
                publisher.close()
            except Exception:  # noqa: BLE001, S110 - it is being replaced
                pass

    def _reset(self) -> None:
        self._drop_publisher()
        self.db.reset()
        self.metrics.active(False)

    def close(self) -> None:
        self._reset()
        self.lock.release()


class RelayThread:
    """An ``OutboxRelay`` on a daemon thread (``kep run``): ``start()``, then ``stop()`` at shutdown."""

    def __init__(self, relay: OutboxRelay) -> None:
        self.relay = relay
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=relay.run, args=(self._stop,), name="kep-outbox-relay", daemon=True
        )

    def start(self) -> RelayThread:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
