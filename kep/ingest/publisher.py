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
from collections.abc import Sequence

import structlog

from kep.producers import headers as h
from kep.producers.delivery import DeliveryReport
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
    """``await publisher.publish(event)``: the ``DeliveryReport`` once the broker stored the record."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topology: Topology,
        *,
        linger_ms: float = 1.0,
        codec: EventCodec | None = None,
    ) -> None:
        # Explicit values win over KEP_PRODUCER_*: never wait for queue room on the event loop, and keep a
        # record no longer in the local queue than a client would wait for its answer.
        settings = ProducerSettings(linger_ms=linger_ms, publish_block_timeout_s=0.0)
        self.producer = EventProducer(kafka, topology, codec=codec, settings=settings)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="kep-ingest-acks", daemon=True)
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

    async def publish(
        self,
        event: Event,
        *,
        timeout: float,
        headers: Sequence[tuple[str, h.HeaderValue]] | None = None,
    ) -> DeliveryReport:
        """Publish ``event`` and wait up to ``timeout`` seconds for its acknowledgement.

        Raises what ``EventProducer.publish`` raises (checks, encoding, a full queue), ``DeliveryError`` when
        the broker refused the record, or ``AckTimeoutError``. After a timeout the record may still be stored
        later: a client retrying with the same ``Idempotency-Key`` sends the same event id, which consumers
        process once.
        """
        future = self.producer.publish(event, headers=headers)
        try:
            async with asyncio.timeout(timeout):
                report = await asyncio.wrap_future(future)
        except TimeoutError:
            self.last_failure = time.monotonic()
            raise AckTimeoutError(f"no acknowledgement from the broker within {timeout:g}s") from None
        except Exception:
            self.last_failure = time.monotonic()
            raise
        self.last_ack = time.monotonic()
        return report

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
