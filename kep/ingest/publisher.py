"""The intake's bridge from asyncio to ``EventProducer``: publish, then await the broker's acknowledgement.

Records go out through the same ``EventProducer`` as every kep publisher (same encoding, same headers,
idempotent, ``acks=all``). A thread serves the producer's delivery callbacks; each acknowledgement resolves the
request's future on the event loop. ``publish`` never blocks the loop: the producer is built with no wait for
room in a full local queue (``BackpressureTimeoutError`` at once, which the intake answers with 503).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Sequence
from datetime import datetime

import structlog

from kep.producers import headers as h
from kep.producers.delivery import DeliveryReport
from kep.producers.errors import DeliveryError
from kep.producers.producer import EventProducer
from kep.producers.settings import ProducerSettings
from kep.schemas.codec import EventCodec
from kep.schemas.events import Event
from kep.topology.model import Topology
from kep.topology.settings import KafkaSettings

log = structlog.get_logger(__name__)

_POLL_S = 0.05


class AckTimeoutError(TimeoutError):
    """The broker did not acknowledge the record within the intake's bound."""


class AsyncPublisher:
    """``await publisher.publish(event)``: the ``DeliveryReport`` once the broker stored the record.

    Cheap per request: the acknowledgements served by one poll are handed to the event loop with one wake-up,
    and the ack bound is enforced by one sweep every ``sweep_s`` rather than a timer per request (so a request
    may wait up to ``sweep_s`` longer than its timeout before it is answered 503).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topology: Topology,
        *,
        linger_ms: float = 5.0,
        codec: EventCodec | None = None,
        sweep_s: float = 0.05,
    ) -> None:
        # Explicit values win over KEP_PRODUCER_*: never wait for queue room on the event loop.
        settings = ProducerSettings(linger_ms=linger_ms, publish_block_timeout_s=0.0)
        self.producer = EventProducer(kafka, topology, codec=codec, settings=settings)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="kep-ingest-acks", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._acked: deque[tuple[asyncio.Future[DeliveryReport], DeliveryReport | None, DeliveryError | None]]
        self._acked = deque()
        self._wake_pending = False
        self._waiting: dict[asyncio.Future[DeliveryReport], float] = {}  # insertion order is deadline order
        self._sweep_s = sweep_s
        self._sweeper: asyncio.TimerHandle | None = None
        self.last_ack = 0.0
        self.last_failure = 0.0

    def start(self) -> AsyncPublisher:
        self._thread.start()
        return self

    def _serve(self) -> None:
        poll = self.producer.poll
        while not self._stop.is_set():
            try:
                poll(_POLL_S)
            except Exception:  # noqa: BLE001 - a failing callback must not stop acknowledgements
                log.exception("ingest: delivery callback failed")

    # -- the poll thread hands acknowledgements over --------------------------------------------------------
    def _delivered(
        self,
        future: asyncio.Future[DeliveryReport],
        report: DeliveryReport | None,
        error: DeliveryError | None,
    ) -> None:
        self._acked.append((future, report, error))
        if not self._wake_pending:
            self._wake_pending = True
            loop = self._loop
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        """On the loop: resolve every acknowledged request (the flag is cleared first, so an ack appended
        while we drain schedules the next wake-up)."""
        self._wake_pending = False
        acked, waiting = self._acked, self._waiting
        now = time.monotonic()
        while acked:
            future, report, error = acked.popleft()
            waiting.pop(future, None)
            if future.done():
                continue
            if error is None:
                self.last_ack = now
                future.set_result(report)  # type: ignore[arg-type]
            else:
                self.last_failure = now
                future.set_exception(error)

    def _sweep(self) -> None:
        """On the loop: fail the requests whose acknowledgement is overdue."""
        now = time.monotonic()
        waiting = self._waiting
        for future, deadline in list(waiting.items()):
            if deadline > now:
                break
            del waiting[future]
            if not future.done():
                self.last_failure = now
                future.set_exception(AckTimeoutError("no acknowledgement from the broker in time"))
        loop = self._loop
        self._sweeper = loop.call_later(self._sweep_s, self._sweep) if waiting and loop is not None else None

    async def publish(
        self,
        event: Event,
        *,
        timeout: float,
        headers: Sequence[tuple[str, h.HeaderValue]] | None = None,
        deliver_at: datetime | None = None,
        delay: float | None = None,
    ) -> DeliveryReport:
        """Publish ``event`` and wait up to ``timeout`` seconds for its acknowledgement.

        Raises what ``EventProducer.publish`` raises (checks, encoding, a full queue), ``DeliveryError`` when
        the broker refused the record, or ``AckTimeoutError``. After a timeout the record may still be stored
        later: a client retrying with the same ``Idempotency-Key`` sends the same event id, which consumers
        process once.
        """
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[DeliveryReport] = loop.create_future()
        delivered = self._delivered
        self.producer.publish(
            event,
            headers=headers,
            on_delivery=lambda report, error: delivered(future, report, error),
            deliver_at=deliver_at,
            delay=delay,
        )
        self._waiting[future] = time.monotonic() + timeout
        if self._sweeper is None:
            self._sweeper = loop.call_later(self._sweep_s, self._sweep)
        try:
            return await future
        except AckTimeoutError:
            raise AckTimeoutError(f"no acknowledgement from the broker within {timeout:g}s") from None
        finally:
            self._waiting.pop(future, None)

    @property
    def healthy(self) -> bool:
        """False while the latest outcome was a failure (no acknowledgement since)."""
        return self.last_failure <= self.last_ack

    def close(self, timeout: float = 10.0) -> int:
        """Stop serving callbacks, flush what is queued (up to ``timeout``), close; records never acknowledged."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return self.producer.close(timeout)
