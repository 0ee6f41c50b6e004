"""The per-message pipeline a lane runs: decode, deduplicate, handle, then finish or hand the failure on."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog
from confluent_kafka import Message

from kep.consumers.app import App, Handler
from kep.consumers.context import MessageContext
from kep.consumers.errors import AppError, IdempotencyStoreError
from kep.consumers.idempotency.base import AlreadyCompletedError, ClaimState, IdempotencyStore
from kep.consumers.runtime.async_runner import AsyncRunner
from kep.consumers.runtime.partition import PartitionState, WorkItem
from kep.consumers.status.hook import NO_OUTCOMES, Outcomes
from kep.producers import headers as h
from kep.producers.headers import IDEMPOTENCY_KEY
from kep.schemas.codec import EventCodec
from kep.schemas.errors import DecodeError, SchemaRegistryUnavailableError
from kep.schemas.events import Event

log = structlog.get_logger(__name__)

# Waits while the idempotency store is unreachable or another worker holds the claim.
STORE_BACKOFF_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


class FailureHandler(Protocol):
    def handle(
        self, state: PartitionState, msg: Message, exc: BaseException, ctx: MessageContext | None
    ) -> float | None:
        """Deal with a failed message: return a delay to retry it in place, or None when it is finished or
        handed to another topic (the handler then calls ``state.done`` once that is durable)."""


class Metrics(Protocol):
    def handled(self, topic: str, duration_s: float) -> None: ...
    def failed(self, topic: str, exception_type: str, duration_s: float) -> None: ...
    def skipped_duplicate(self, topic: str) -> None: ...


class LogLimiter:
    """At most ``per_window`` log lines per key and window; the next allowed line tells how many were held back.

    Failures are counted in metrics and recorded in provenance headers one by one; the log only has to show
    what is going on without flooding when a dependency is down and every message fails.
    """

    def __init__(self, per_window: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_window = per_window
        self.window_s = window_s
        self._clock = clock
        self._state: dict[Any, list[float]] = {}  # key -> [window start, lines in window, suppressed]

    def allow(self, key: Any) -> int | None:
        """None to stay quiet; otherwise the number of lines suppressed since the last one logged."""
        now = self._clock()
        state = self._state.get(key)
        if state is None or now - state[0] >= self.window_s:
            suppressed = int(state[2]) if state else 0
            self._state[key] = [now, 1, 0]
            return suppressed
        if state[1] < self.per_window:
            state[1] += 1
            suppressed, state[2] = int(state[2]), 0
            return suppressed
        state[2] += 1
        return None


def exception_name(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


class Processor:
    def __init__(
        self,
        *,
        app: App,
        group: str,
        codec: EventCodec,
        store: IdempotencyStore,
        failures: FailureHandler,
        metrics: Metrics,
        async_runner: AsyncRunner,
        clock: Callable[[], float] = time.time,
        outcomes: Outcomes = NO_OUTCOMES,
    ) -> None:
        self.app = app
        self.group = group
        self.codec = codec
        self.store = store
        self.failures = failures
        self.metrics = metrics
        self._async_runner = async_runner
        self._clock = clock
        self.outcomes = (
            outcomes  # event status and batches (consumers/status): told what became of each message
        )
        strategy = app.idempotency_key
        self._key_field = strategy.removeprefix("field:") if strategy.startswith("field:") else None
        self._use_header = strategy == "header"
        self._log_limit = LogLimiter(per_window=10, window_s=10.0)
        self._handlers: dict[tuple[str, str], Handler | None] = {}

    def close(self) -> None:
        self.store.close()
        self._async_runner.close()
        close_codec = getattr(self.codec, "close", None)  # the Confluent codec's HTTP connections
        if close_codec is not None:
            close_codec()

    # -- the pipeline -------------------------------------------------------------------------------------------
    def __call__(self, item: WorkItem) -> None:
        """Run one lane batch: the messages of one partition (one key lane in key-ordered mode), in order."""
        state, msgs = item
        one = self._one
        for msg in msgs:
            if state.stopped:
                return
            one(state, msg)

    def _one(self, state: PartitionState, msg: Message) -> None:
        value = msg.value()
        try:
            if value is None:
                raise DecodeError("a tombstone (no value) on an event topic", raw=None)
            event = self.codec.decode(value)
        except DecodeError as exc:
            self._failed(state, msg, exc, None, 0.0)
            return
        except SchemaRegistryUnavailableError as exc:  # not the message's fault: wait, never dead-letter
            waited = self._decode_when_registry_answers(state, msg, value, exc)  # type: ignore[arg-type]
            if waited is None:
                return
            event = waited
        except Exception as exc:  # a codec bug must not stop the partition: treat it as undecodable
            self._failed(state, msg, DecodeError(f"decoder failed: {exc!r}", raw=value), None, 0.0)
            return
        ctx = self._context(state, msg, event)
        route = (state.source_topic, event.avro_name)
        handler = self._handlers.get(route)
        if handler is None:
            handler = self._handlers[route] = self.app.resolve(*route)
        if handler is None:
            missing = AppError(
                f"group {self.group!r} has no handler for {event.avro_name} on {state.source_topic}"
            )
            self._failed(state, msg, missing, ctx, 0.0)
            return
        self._run(state, msg, event, ctx, handler)

    def _run(
        self, state: PartitionState, msg: Message, event: Event, ctx: MessageContext, handler: Handler
    ) -> None:
        waits = 0
        while not state.stopped:
            try:
                claim = self.store.claim(ctx.idempotency_key)
            except IdempotencyStoreError as exc:
                self._store_wait(state, waits, exc)
                waits += 1
                continue
            if claim is ClaimState.BUSY:  # another live worker runs it; its lease tells when to look again
                self._store_wait(state, waits, None)
                waits += 1
                continue
            if claim is ClaimState.DONE:
                self.metrics.skipped_duplicate(state.source_topic)
                self.outcomes.duplicate(msg, ctx, state.cancelled)
                state.done(msg.offset())  # type: ignore[arg-type]
                return
            self.outcomes.started(msg, ctx)
            started = time.perf_counter()
            try:
                if handler.is_async:
                    self._async_runner.run(handler.fn(event, ctx))  # type: ignore[arg-type]
                else:
                    handler.fn(event, ctx)
            except AlreadyCompletedError:
                self.metrics.skipped_duplicate(state.source_topic)
                self.outcomes.duplicate(msg, ctx, state.cancelled)
                state.done(msg.offset())  # type: ignore[arg-type]
                return
            except Exception as exc:
                self._release(ctx.idempotency_key)
                delay = self._failed(state, msg, exc, ctx, time.perf_counter() - started)
                if delay is None:
                    return
                if state.cancelled.wait(delay):
                    return
                ctx.attempt += 1
                waits = 0
                continue
            duration = time.perf_counter() - started
            if not ctx.completed_in_transaction and not self._complete(ctx.idempotency_key, state):
                return
            self.metrics.handled(state.source_topic, duration)
            self.outcomes.handled(msg, ctx, state.cancelled)
            state.done(msg.offset())  # type: ignore[arg-type]
            return

    def _failed(
        self,
        state: PartitionState,
        msg: Message,
        exc: BaseException,
        ctx: MessageContext | None,
        duration: float,
    ) -> float | None:
        name = exception_name(exc)
        self.metrics.failed(state.source_topic, name, duration)
        suppressed = self._log_limit.allow((state.source_topic, name))
        if suppressed is not None:
            log.warning(
                "handler failed" if ctx is not None else "message undecodable",
                group=self.group,
                topic=msg.topic(),
                partition=msg.partition(),
                offset=msg.offset(),
                attempt=ctx.attempt if ctx else None,
                event_id=ctx.idempotency_key if ctx else None,
                error=f"{name}: {exc}",
                similar_suppressed=suppressed,
            )
        return self.failures.handle(state, msg, exc, ctx)

    def _decode_when_registry_answers(
        self, state: PartitionState, msg: Message, value: bytes, error: SchemaRegistryUnavailableError
    ) -> Event | None:
        """Decode again, with backoff, until the schema registry answers; None when the partition is revoked
        or the worker stops meanwhile (the offset stays uncommitted) or the message turns out undecodable."""
        waits = 0
        while True:
            suppressed = self._log_limit.allow(("schema registry unavailable", state.source_topic))
            if suppressed is not None:
                log.warning(
                    "schema registry unavailable; waiting",
                    group=self.group,
                    topic=msg.topic(),
                    partition=msg.partition(),
                    offset=msg.offset(),
                    error=str(error),
                    similar_suppressed=suppressed,
                )
            if state.cancelled.wait(STORE_BACKOFF_S[min(waits, len(STORE_BACKOFF_S) - 1)]):
                return None
            waits += 1
            try:
                return self.codec.decode(value)
            except SchemaRegistryUnavailableError as exc:
                error = exc
            except DecodeError as exc:
                self._failed(state, msg, exc, None, 0.0)
                return None
            except Exception as exc:
                self._failed(state, msg, DecodeError(f"decoder failed: {exc!r}", raw=value), None, 0.0)
                return None

    # -- idempotency ----------------------------------------------------------------------------------------------
    def _store_wait(self, state: PartitionState, waits: int, error: IdempotencyStoreError | None) -> None:
        """Wait before asking the store again: it failed, or another worker holds the claim. Never skip it."""
        if error is not None:
            log.warning("idempotency store unavailable; waiting", group=self.group, error=str(error))
        state.cancelled.wait(STORE_BACKOFF_S[min(waits, len(STORE_BACKOFF_S) - 1)])

    def _complete(self, key: str, state: PartitionState) -> bool:
        waits = 0
        while True:
            try:
                self.store.complete(key)
                return True
            except IdempotencyStoreError as exc:
                log.warning("cannot record completion; waiting", group=self.group, error=str(exc))
                if state.cancelled.wait(STORE_BACKOFF_S[min(waits, len(STORE_BACKOFF_S) - 1)]):
                    return False
                waits += 1

    def _release(self, key: str) -> None:
        try:
            self.store.release(key)
        except IdempotencyStoreError as exc:  # the lease expires by itself
            log.warning("cannot release claim", group=self.group, error=str(exc))

    # -- context ---------------------------------------------------------------------------------------------------
    def _context(self, state: PartitionState, msg: Message, event: Event) -> MessageContext:
        headers = msg.headers()
        attempt = 1
        if state.tier is not None:
            attempt = (h.header_int(headers, h.ATTEMPT) or 0) + 1
        return MessageContext(
            msg,
            group=self.group,
            topic=state.source_topic,
            attempt=attempt,
            idempotency_key=self._idempotency_key(state, msg, headers, event),
            event_type=event.avro_name,
            store=self.store,
        )

    def _idempotency_key(self, state: PartitionState, msg: Message, headers: Any, event: Event) -> str:
        if self._key_field is not None:
            return str(getattr(event, self._key_field))
        if self._use_header and headers:
            for name, value in headers:
                if name == IDEMPOTENCY_KEY and value:
                    return value.decode() if isinstance(value, bytes) else str(value)
        if state.tier is not None:  # the original coordinates survive in the provenance headers
            topic = h.header_str(headers, h.ORIGINAL_TOPIC) or state.source_topic
            partition, offset = (
                h.header_int(headers, h.ORIGINAL_PARTITION),
                h.header_int(headers, h.ORIGINAL_OFFSET),
            )
            return f"{topic}/{partition}/{offset}"
        return f"{msg.topic()}/{msg.partition()}/{msg.offset()}"
