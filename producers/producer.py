"""``EventProducer``: typed, validated publishing of kep events on an idempotent librdkafka producer.

The hot path (``publish``) does one dict lookup for the cached route of the event type, one encode, one list
of headers and one ``produce``. Everything that can be computed per event type (topic, key field, the
``kep-event-type`` and ``kep-schema`` headers) is computed on first use and cached.

Two ways to learn about delivery:

* ``publish(event)`` returns a ``concurrent.futures.Future[DeliveryReport]``. Convenient; a Future costs a few
  microseconds to create and resolve.
* ``publish(event, on_delivery=callback)`` calls ``callback(report, error)`` instead and returns ``None``:
  the fast path, for high-volume publishers.

Callbacks run on the thread that polls the producer: ``publish`` serves them every ``poll_every`` calls, and
``flush``, ``close``, ``publish_and_wait`` and waiting on a returned future serve them too.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from datetime import datetime
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, overload

import structlog
from confluent_kafka import KafkaException, Producer

from kep.producers import _routing
from kep.producers import headers as h
from kep.producers.batches import BatchReport, batch_headers, check_batch_id, check_members, new_batch_id
from kep.producers.delay import DelayArg, delay_route, due_time_ms
from kep.producers.delivery import DeliveryCallback, DeliveryFuture, DeliveryReport, wrap_callback
from kep.producers.errors import (
    BackpressureTimeoutError,
    DeliveryError,
    DeliveryTimeoutError,
    InvalidHeaderError,
    MissingKeyError,
    ProducerClosedError,
)
from kep.producers.settings import ProducerSettings
from kep.producers.traceparent import validate_traceparent

if TYPE_CHECKING:
    from kep.schemas.codec import EventCodec
    from kep.schemas.events import Event
    from kep.topology.model import Topology
    from kep.topology.settings import KafkaSettings

log = structlog.get_logger(__name__)

_IDEMPOTENCY_KEY = h.IDEMPOTENCY_KEY
_ANY_PARTITION = -1  # librdkafka's RD_KAFKA_PARTITION_UA: the partitioner picks
_CLIENT_ERROR_LOG_INTERVAL_S = 10.0

#: Caller headers: a mapping or a sequence of ``(name, value)`` pairs; values are bytes, str or None.
HeadersArg = Mapping[str, h.HeaderValue] | Sequence[tuple[str, h.HeaderValue]]
RawHeaders = Sequence[tuple[str, h.HeaderValue]] | Mapping[str, h.HeaderValue] | None


class EventProducer:
    """Publishes ``Event`` instances to the topics of a ``Topology``. Use as a context manager.

    >>> with EventProducer(KafkaSettings(), load_topology("topology.yaml")) as producer:   # doctest: +SKIP
    ...     producer.publish_and_wait(order)
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topology: Topology,
        *,
        codec: EventCodec | None = None,
        settings: ProducerSettings | None = None,
    ) -> None:
        if codec is None:
            from kep.schemas.codec import codec_for
            from kep.topology.loader import schema_registry

            codec = codec_for(registry=schema_registry(topology))  # the topology's schemas and KEP_SCHEMAS
        self._settings = settings or ProducerSettings()
        self._topology = topology
        self._codec = codec
        conf = {**kafka.as_librdkafka_dict(), **self._settings.as_librdkafka_dict()}
        conf["error_cb"] = self._on_client_error
        self._producer = Producer(conf)
        self._produce = self._producer.produce
        self._poll = self._producer.poll
        self._routes: dict[type[Event], _routing.Route] = {}
        self._topic_routes: dict[tuple[type[Event], str], _routing.Route] = {}
        self._poll_every = self._settings.poll_every
        self._until_poll = self._poll_every
        # The last on_delivery callback and its librdkafka wrapper, replaced as one (threads may share us).
        self._last: tuple[DeliveryCallback | None, Callable[..., None]] = (None, _unset_callback)
        self._closed = False
        self._previous_sigterm: Any = None
        self._client_errors_logged: dict[int, float] = {}

    # -- publishing -----------------------------------------------------------------------------------------
    @overload
    def publish(
        self,
        event: Event,
        *,
        topic: str | None = ...,
        key: str | bytes | None = ...,
        headers: HeadersArg | None = ...,
        traceparent: str | None = ...,
        on_delivery: None = ...,
        deliver_at: datetime | None = ...,
        delay: DelayArg | None = ...,
    ) -> Future[DeliveryReport]: ...

    @overload
    def publish(
        self,
        event: Event,
        *,
        topic: str | None = ...,
        key: str | bytes | None = ...,
        headers: HeadersArg | None = ...,
        traceparent: str | None = ...,
        on_delivery: DeliveryCallback,
        deliver_at: datetime | None = ...,
        delay: DelayArg | None = ...,
    ) -> None: ...

    def publish(
        self,
        event: Event,
        *,
        topic: str | None = None,
        key: str | bytes | None = None,
        headers: HeadersArg | None = None,
        traceparent: str | None = None,
        on_delivery: DeliveryCallback | None = None,
        deliver_at: datetime | None = None,
        delay: DelayArg | None = None,
    ) -> Future[DeliveryReport] | None:
        """Encode ``event`` and send it; nothing is sent if any check fails.

        The topic is ``topic`` or the one topic whose value schema includes the event type; the key is ``key``
        or the event's key field. Raises ``RoutingError`` (unknown topic, wrong event type, no single topic),
        ``InvalidTraceparentError``, ``InvalidHeaderError``, ``MissingKeyError``, ``EncodeError`` or, when the
        local queue stays full, ``BackpressureTimeoutError``.

        ``deliver_at`` (an aware datetime) or ``delay`` (a ``timedelta`` or seconds), not both: the event is
        handled no earlier than then. It waits in a delay-tier topic of the topology's ``delays:`` section
        (the report names that topic); due now or in the past, it is published at once. ``InvalidDelayError``
        when it cannot be delayed (``docs/delayed-events.md``).
        """
        if self._closed:
            raise ProducerClosedError("publish on a closed EventProducer")
        route = self._routes.get(event.__class__) if topic is None else None
        if route is None:
            route = self._route(event.__class__, topic)
        if key is None:
            field_value = route.key_of(event)
            key = (
                field_value
                if field_value.__class__ is str and field_value
                else _checked_key(event, route, field_value)
            )
        record_headers: list[tuple[str, h.HeaderValue]] = [
            route.event_type_header,
            route.schema_header,
            (_IDEMPOTENCY_KEY, route.idempotency_key(event)),
        ]
        if traceparent is not None:
            record_headers.append((h.TRACEPARENT, validate_traceparent(traceparent)))
        if headers:
            record_headers.extend(_caller_headers(headers))
        out_topic = route.topic
        if deliver_at is not None or delay is not None:
            now_ms = time.time_ns() // 1_000_000
            due_ms = due_time_ms(deliver_at, delay, now_ms)
            if due_ms is not None:
                waiting = delay_route(self._topology.delays, route.topic, due_ms, now_ms)
                out_topic = waiting.topic
                record_headers.extend(waiting.headers)
        value = route.encode(event)
        future: DeliveryFuture | None = None
        if on_delivery is None:
            future = DeliveryFuture(self._poll)
            callback: Callable[..., None] = future._on_delivery
        else:
            last = self._last
            callback = last[1] if on_delivery is last[0] else self._wrapped(on_delivery)
        try:
            # Positional, in the order of the C signature (topic, value, key, partition, callback,
            # on_delivery, timestamp, headers): its keyword parsing costs about 0.5 µs a call.
            self._produce(out_topic, value, key, _ANY_PARTITION, callback, None, 0, record_headers)
        except BufferError:
            self._produce_when_room(out_topic, value, key, callback, record_headers)
        except KafkaException as exc:
            raise _delivery_error(out_topic, exc) from exc
        self._until_poll -= 1
        if self._until_poll <= 0:
            self._until_poll = self._poll_every
            self._poll(0)
        return future

    def publish_and_wait(
        self,
        event: Event,
        *,
        timeout: float = 30.0,
        topic: str | None = None,
        key: str | bytes | None = None,
        headers: HeadersArg | None = None,
        traceparent: str | None = None,
        deliver_at: datetime | None = None,
        delay: DelayArg | None = None,
    ) -> DeliveryReport:
        """Publish and wait for the acknowledgement.

        The ``DeliveryReport``, or ``DeliveryError`` / ``DeliveryTimeoutError``; checks as in ``publish``.
        """
        future = self.publish(
            event,
            topic=topic,
            key=key,
            headers=headers,
            traceparent=traceparent,
            deliver_at=deliver_at,
            delay=delay,
        )
        try:
            return future.result(timeout)
        except TimeoutError as exc:
            raise DeliveryTimeoutError(f"no acknowledgement for {event.avro_name} within {timeout}s") from exc

    def publish_batch(
        self,
        events: Sequence[Event],
        *,
        batch_id: str | None = None,
        timeout: float = 30.0,
        headers: HeadersArg | None = None,
    ) -> BatchReport:
        """Publish ``events`` as one batch and wait for every acknowledgement.

        Each event carries ``kep-batch-id`` (``batch_id``, or a new UUID) and ``kep-batch-size``; once every
        member reached a final state in a consumer group, that group publishes one ``BatchCompleted``. Refused
        before anything is sent: an empty batch, an event id twice (``InvalidBatchError``), and whatever
        ``publish`` refuses. ``DeliveryError`` or ``DeliveryTimeoutError`` when a member is not acknowledged;
        publishing the same events again with the same ``batch_id`` is safe (members are counted by id).
        """
        check_members(events)
        batch_id = check_batch_id(batch_id) if batch_id is not None else new_batch_id()
        extra = batch_headers(batch_id, len(events))
        if headers:
            extra.extend(_caller_headers(headers))
        futures = [self.publish(event, headers=extra) for event in events]
        deadline = time.monotonic() + timeout
        reports = []
        for event, future in zip(events, futures, strict=True):
            try:
                reports.append(future.result(max(0.0, deadline - time.monotonic())))
            except TimeoutError as exc:
                raise DeliveryTimeoutError(
                    f"batch {batch_id}: no acknowledgement for {event.avro_name} {event.idempotency_key()!r} "
                    f"within {timeout}s"
                ) from exc
        return BatchReport(batch_id, tuple(reports))

    def produce_raw(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: RawHeaders = None,
        *,
        on_delivery: DeliveryCallback | None = None,
    ) -> Future[DeliveryReport] | None:
        """Send bytes exactly as given (no topology check, no encoding, no added headers).

        For forwarding records to retry and dead-letter topics. A future, or ``None`` with ``on_delivery``.
        """
        if self._closed:
            raise ProducerClosedError("produce_raw on a closed EventProducer")
        future: DeliveryFuture | None = None
        if on_delivery is None:
            future = DeliveryFuture(self._poll)
            callback: Callable[..., None] = future._on_delivery
        else:
            callback = self._wrapped(on_delivery)
        record_headers = list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
        try:
            self._produce(topic, value, key, on_delivery=callback, headers=record_headers)
        except BufferError:
            self._produce_when_room(topic, value, key, callback, record_headers)
        except KafkaException as exc:
            raise _delivery_error(topic, exc) from exc
        self._until_poll -= 1
        if self._until_poll <= 0:
            self._until_poll = self._poll_every
            self._poll(0)
        return future

    # -- lifecycle ------------------------------------------------------------------------------------------
    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery callbacks for up to ``timeout`` seconds; the number of events served."""
        return int(self._poll(timeout))

    def flush(self, timeout: float = 30.0) -> int:
        """Wait up to ``timeout`` seconds for every queued record to be acknowledged; the number left."""
        remaining = int(self._producer.flush(timeout))
        if remaining:
            log.warning("producer.flush_incomplete", remaining=remaining, timeout_s=timeout)
        return remaining

    def close(self, timeout: float = 30.0) -> int:
        """Flush, then release the client. Idempotent; returns the number of records never acknowledged."""
        if self._closed:
            return 0
        self._closed = True
        remaining = self.flush(timeout)
        self._producer.close()
        return remaining

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def install_signal_handlers(self, flush_timeout: float = 10.0) -> None:
        """On SIGTERM, flush (up to ``flush_timeout``), then do what SIGTERM did before. Main thread only."""

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            log.info("producer.sigterm_flush", timeout_s=flush_timeout)
            self.flush(flush_timeout)
            previous = self._previous_sigterm
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
            if callable(previous):
                previous(signum, frame)
            elif previous in (signal.SIG_DFL, None):
                os.kill(os.getpid(), signal.SIGTERM)

        self._previous_sigterm = signal.signal(signal.SIGTERM, on_sigterm)

    # -- internals ------------------------------------------------------------------------------------------
    def _route(self, event_type: type[Event], topic: str | None) -> _routing.Route:
        """The cached route of ``event_type`` to ``topic`` (``None``: the one topic carrying it)."""
        route = self._routes.get(event_type) if topic is None else self._topic_routes.get((event_type, topic))
        if route is None:
            route = _routing.resolve(self._topology, self._codec, event_type, topic)
            if topic is None:
                self._routes[event_type] = route
            else:
                self._topic_routes[(event_type, topic)] = route
        return route

    def _wrapped(self, on_delivery: DeliveryCallback) -> Callable[..., None]:
        """The librdkafka callback for ``on_delivery``; the last one is reused, so passing the same callable
        every time costs no allocation."""
        last = self._last
        if on_delivery != last[0]:
            last = (on_delivery, wrap_callback(on_delivery))
            self._last = last
        return last[1]

    def _produce_when_room(
        self,
        topic: str,
        value: bytes | None,
        key: str | bytes | None,
        callback: Callable[..., None],
        headers: Any,
    ) -> None:
        """The local queue is full: serve callbacks to make room, retry until ``publish_block_timeout_s``."""
        limit = self._settings.publish_block_timeout_s
        start = time.monotonic()
        while True:
            waited = time.monotonic() - start
            if waited >= limit:
                raise BackpressureTimeoutError(topic, waited)
            self._poll(min(0.05, limit - waited))
            try:
                self._produce(topic, value, key, on_delivery=callback, headers=headers)
                return
            except BufferError:
                continue
            except KafkaException as exc:
                raise _delivery_error(topic, exc) from exc

    def _on_client_error(self, err: Any) -> None:
        """librdkafka's client-level errors (broker down, authentication...), logged every 10 s per code."""
        now = time.monotonic()
        code = err.code()
        if (
            now - self._client_errors_logged.get(code, -_CLIENT_ERROR_LOG_INTERVAL_S)
            >= _CLIENT_ERROR_LOG_INTERVAL_S
        ):
            self._client_errors_logged[code] = now
            log.warning("producer.client_error", code=code, name=err.name(), reason=err.str())


def _unset_callback(err: Any, msg: Any) -> None:  # pragma: no cover - replaced before any use
    raise AssertionError("no delivery callback set")


def _checked_key(event: Event, route: _routing.Route, value: object) -> str | bytes | None:
    """The key when the key field's value is not a plain non-empty str: bytes kept, others as str.

    No key field declared (on the model or the topic): no key, and the partitioner spreads records.
    """
    if route.key_attr is None:
        return None
    if value is None or value == "" or value == b"":
        raise MissingKeyError(
            f"{event.avro_name} has no key: its key field {route.key_attr!r} is empty; pass key="
        )
    return value if isinstance(value, bytes) else str(value)


def _caller_headers(headers: HeadersArg) -> list[tuple[str, h.HeaderValue]]:
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    for name, _ in pairs:
        if name in h.PRODUCER_HEADERS:
            raise InvalidHeaderError(f"header {name!r} is set by kep; pass traceparent= or leave it out")
    return pairs


def _delivery_error(topic: str, exc: KafkaException) -> DeliveryError:
    err = exc.args[0]
    return DeliveryError(topic, None, err.code(), err.name(), err.str(), retriable=err.retriable())
