"""The per-message pipeline a lane runs: decode, deduplicate, handle; the result is an outcome value.

``Processor.process`` never raises and never waits. Whatever goes wrong for one record, at any step (its value,
its headers, its key, the store refusing its key, the handler, routing the failure, a log line), becomes that
record's outcome: usually the dead-letter topic with the error named. The store being unreachable is not the
record's fault: the outcome is then to wait and run it again (``Rerun``), never to skip it and never to
dead-letter it. ``Processor.__call__`` is a lane's loop: process, settle (``runtime/settle.py``), again while
the settler says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog
from confluent_kafka import Message

from kep.consumers.app import App, Handler, Hook
from kep.consumers.context import MessageContext
from kep.consumers.errors import AppError, IdempotencyStoreError, RecordError, exception_name
from kep.consumers.idempotency.base import AlreadyCompletedError, ClaimState, IdempotencyStore, Key
from kep.consumers.limits.gate import Limits
from kep.consumers.outbox import HandlerOutbox
from kep.consumers.outcome import DUPLICATE, HANDLED, Drop, Forward, Outcome, Redo, Rerun
from kep.consumers.retry.headers import InvalidProvenanceError, Provenance
from kep.consumers.retry.router import Failure, Router
from kep.consumers.runtime.async_runner import AsyncRunner
from kep.consumers.runtime.keys_in_flight import KeysInFlight
from kep.consumers.runtime.lane_keys import LaneKeys
from kep.consumers.runtime.partition import PartitionState, WorkItem
from kep.consumers.runtime.settle import Settler
from kep.consumers.status.hook import NO_OUTCOMES, Outcomes
from kep.producers import headers as h
from kep.producers.headers import IDEMPOTENCY_KEY
from kep.schemas.codec import EventCodec
from kep.schemas.errors import DecodeError, SchemaRegistryUnavailableError
from kep.schemas.events import Event

log = structlog.get_logger(__name__)

# Waits while the idempotency store is unreachable or another worker holds the claim.
STORE_BACKOFF_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


class Metrics(Protocol):
    def handled(self, topic: str, duration_s: float) -> None: ...
    def failed(self, topic: str, exception_type: str, duration_s: float) -> None: ...


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


class Processor:
    def __init__(
        self,
        *,
        app: App,
        group: str,
        codec: EventCodec,
        store: IdempotencyStore,
        router: Router,
        settler: Settler,
        metrics: Metrics,
        async_runner: AsyncRunner,
        outcomes: Outcomes = NO_OUTCOMES,
        outbox: HandlerOutbox | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.app = app
        self.group = group
        self.codec = codec
        self.store = store
        self.in_flight = KeysInFlight(store.lease_s)  # one message at a time per key in this process
        self.router = router
        self.settler = settler
        self.metrics = metrics
        self._async_runner = async_runner
        self.outcomes = (
            outcomes  # event status and batches (consumers/status): told what became of each message
        )
        strategy = app.idempotency_key
        self._key_field = strategy.removeprefix("field:") if strategy.startswith("field:") else None
        self._use_header = strategy == "header"
        self._log_limit = LogLimiter(per_window=10, window_s=10.0)
        self._handlers: dict[tuple[str, str], Handler | None] = {}
        self.outbox = outbox  # ctx.publish (consumers/outbox.py)
        self.limits = limits  # rate and concurrency limits (consumers/limits); None: no handler has one
        # counted per lane thread and added once per lane batch, when the metrics offer it (no lock per message)
        self._count_handled = getattr(metrics, "count_handled", metrics.handled)
        self._flush_metrics: Callable[[], None] | None = getattr(metrics, "flush", None)

    def close(self) -> None:
        self.store.close()
        self._async_runner.close()

    def call_hook(self, hook: Hook) -> None:
        """Run an app's startup or shutdown hook: ``async def`` on the async handlers' event loop."""
        if hook.is_async:
            self._async_runner.run(hook.fn())  # type: ignore[arg-type]
        else:
            hook.fn()

    # -- a lane's loop ------------------------------------------------------------------------------------------
    def __call__(self, item: WorkItem) -> None:
        """Run one lane batch: the messages of one partition (one key lane in key-ordered mode), in order."""
        try:
            self._lane_batch(item)
        finally:
            if self._flush_metrics is not None:
                self._flush_metrics()

    def _lane_batch(self, item: WorkItem) -> None:
        state, msgs = item
        token = state.token
        process, settle = self.process, self.settler.settle
        keys = self._lane_keys(state, msgs)
        try:
            for msg in msgs:
                if token.cancelled:
                    return
                redo = None
                while True:  # run again in place while the settler says so (store, busy claim, blocking)
                    outcome = process(state, msg, redo, keys)
                    if keys is not None:
                        if keys.took(msg):
                            break  # handled; finished once its key's completion is stored with the batch's
                        if isinstance(outcome, Rerun):
                            keys.flush()  # what is done is finished before this message waits,
                            keys.release_unused()  # and the rest claim again: another lane may wait for one
                    redo = settle(state, msg, outcome)
                    if redo is None or token.cancelled:
                        break
        finally:
            if keys is not None:
                try:  # also when revoked meanwhile: what was handled is completed, finished and committed
                    keys.flush()
                finally:
                    keys.release_unused()

    def _lane_keys(self, state: PartitionState, msgs: list[Message]) -> LaneKeys | None:
        """Claims and completions per lane batch (``lane_keys.py``), when the store batches them."""
        if not self.store.batches or len(msgs) < 2:
            return None
        settle = self.settler.settle
        keys = LaneKeys(self.store, state, settle, in_flight=self.in_flight)  # type: ignore[arg-type]
        if self._use_header:  # keys known before decoding
            keys.claim_ahead([self._ahead_key(state, msg) for msg in msgs])
        return keys

    def _ahead_key(self, state: PartitionState, msg: Message) -> Key | None:
        """The key of ``msg`` read from its headers alone; None when that takes decoding (a retry record
        without the key header is keyed by its provenance)."""
        try:
            headers: Any = msg.headers()  # a consumed message's headers: a list of (name, value)
            if state.tier is not None and not any(n == IDEMPOTENCY_KEY and v for n, v in headers or ()):
                return None
            return self._idempotency_key(state, msg, headers, None, None)
        except Exception:  # noqa: BLE001 - the message's own processing names the problem
            return None

    # -- the pipeline -------------------------------------------------------------------------------------------
    def process(
        self, state: PartitionState, msg: Message, redo: Redo | None = None, keys: LaneKeys | None = None
    ) -> Outcome:
        """What must happen to ``msg`` (see the module docstring). ``redo``: what an earlier run in place left;
        ``keys``: the lane batch's claims and completions (None: the store is asked per message)."""
        try:
            value = msg.value()
            if value is None:
                return self._failed(
                    state, msg, DecodeError("a tombstone (no value) on an event topic", raw=None)
                )
            try:
                event = self.codec.decode(value)
            except DecodeError as exc:
                return self._failed(state, msg, exc)
            except SchemaRegistryUnavailableError as exc:  # not the record's fault: wait, never dead-letter
                return self._registry_wait(redo, exc)
            except Exception as exc:  # a codec bug must not stop the partition: treat it as undecodable
                return self._failed(state, msg, DecodeError(f"decoder failed: {exc!r}", raw=value))
            try:
                ctx = self._context(state, msg, event, redo)
            except Exception as exc:
                error = RecordError(f"cannot read the record's headers or idempotency key: {exc!r}")
                return self._failed(state, msg, error)
            route = (state.source_topic, event.avro_name)
            handler = self._handlers.get(route)
            if handler is None:
                handler = self._handlers[route] = self.app.resolve(*route)
            if handler is None:
                missing = AppError(
                    f"group {self.group!r} has no handler for {event.avro_name} on {state.source_topic}"
                )
                return self._failed(state, msg, missing, ctx, redo)
            return self._run(state, msg, event, ctx, handler, redo, keys)
        except Exception as exc:  # a bug of the runtime itself: still this record's outcome
            return self._failed(state, msg, RecordError(f"processing failed: {exc!r}"), None, redo)

    def _run(
        self,
        state: PartitionState,
        msg: Message,
        event: Event,
        ctx: MessageContext,
        handler: Handler,
        redo: Redo | None,
        keys: LaneKeys | None,
    ) -> Outcome:
        key = ctx.store_key
        if redo is not None and redo.handled:  # the handler succeeded; its completion could not be recorded
            return self._complete(state, msg, ctx, redo, 0.0)
        try:
            claim = self.store.claim(key) if keys is None else keys.claim(key)
        except IdempotencyStoreError as exc:
            return self._store_wait(ctx, redo, exc)
        except Exception as exc:  # noqa: BLE001 - a store that cannot take this key: the record's failure
            return self._failed(
                state, msg, RecordError(f"the idempotency store refused the key: {exc!r}"), ctx, redo
            )
        if claim is ClaimState.BUSY:  # another live worker runs it; its lease tells when to look again
            return self._store_wait(ctx, redo, None)
        if claim is ClaimState.DONE:
            self._tell(self.outcomes.duplicate, msg, ctx, state.token)
            return DUPLICATE
        # the store's claim is the process's: a key another message of this process runs is a busy claim
        if not self.in_flight.take(key, msg if keys is None else keys):
            return self._store_wait(ctx, redo, None)
        gate = (
            self.limits.find(state.source_topic, event.avro_name, handler)
            if self.limits is not None
            else None
        )
        if gate is not None:  # a rate or concurrency limit: held back (claim given up) until it lets this run
            handle = lambda: self._handle(state, msg, event, ctx, handler, redo, keys)  # noqa: E731
            return gate.run(event, ctx, redo, handle, lambda: self._release(key))
        return self._handle(state, msg, event, ctx, handler, redo, keys)

    def _handle(
        self,
        state: PartitionState,
        msg: Message,
        event: Event,
        ctx: MessageContext,
        handler: Handler,
        redo: Redo | None,
        keys: LaneKeys | None,
    ) -> Outcome:
        """Run the handler and complete its key (``keys``: the lane batch's, which completes it with the
        batch; None: at once)."""
        key = ctx.store_key
        try:
            self.outcomes.started(msg, ctx)
        except Exception as exc:  # noqa: BLE001
            self._untold(exc)
        started = time.perf_counter()
        try:
            if handler.is_async:
                self._async_runner.run(handler.fn(event, ctx))  # type: ignore[arg-type]
            else:
                handler.fn(event, ctx)
        except AlreadyCompletedError:
            self.in_flight.drop_one(key)
            self._tell(self.outcomes.duplicate, msg, ctx, state.token)
            return DUPLICATE
        except Exception as exc:
            if (
                ctx.store_error is not None
            ):  # the store failed inside ctx.transaction(): not the handler's fault
                return self._store_wait(ctx, redo, ctx.store_error)
            if keys is None:
                self._release(key)
            else:
                keys.release_later(key)  # with the batch's completions, before any retry of it is due
            return self._failed(state, msg, exc, ctx, redo, time.perf_counter() - started)
        duration = time.perf_counter() - started
        if keys is not None and not ctx.completed_in_transaction:
            keys.defer(key, msg)  # completed with the lane batch's keys, then settled (and given back)
        else:
            if not ctx.completed_in_transaction:
                try:
                    self.store.complete(key)
                except IdempotencyStoreError as exc:
                    return self._store_wait(ctx, redo, exc, handled=True)
            self.in_flight.drop_one(key)
        self._count_handled(state.source_topic, duration)
        try:  # inline, not through _tell: twice per message
            self.outcomes.handled(msg, ctx, state.token)
        except Exception as exc:  # noqa: BLE001
            self._untold(exc)
        return HANDLED

    def _complete(
        self, state: PartitionState, msg: Message, ctx: MessageContext, redo: Redo | None, duration: float
    ) -> Outcome:
        try:
            self.store.complete(ctx.store_key)
        except IdempotencyStoreError as exc:
            return self._store_wait(ctx, redo, exc, handled=True)
        self.in_flight.drop_one(ctx.store_key)
        self._count_handled(state.source_topic, duration)
        self._tell(self.outcomes.handled, msg, ctx, state.token)
        return HANDLED

    def _failed(
        self,
        state: PartitionState,
        msg: Message,
        exc: BaseException,
        ctx: MessageContext | None = None,
        redo: Redo | None = None,
        duration: float = 0.0,
    ) -> Outcome:
        """Route a failed execution. Nothing here may raise: a metric, a log line or the routing failing makes
        the record's outcome the dead-letter topic (or a logged drop), not a stalled partition."""
        name = "?"
        try:
            name = exception_name(exc)
            self.metrics.failed(state.source_topic, name, duration)
        except Exception:  # noqa: BLE001, S110 - a metric must not stop the record
            pass
        self._log_failure(state, msg, exc, name, ctx)
        failure = None
        outcome: Outcome
        try:
            failure = self._failure(state, msg, exc, ctx, redo)
            outcome = self.router.route(failure)
        except Exception as error:  # noqa: BLE001 - routing failed too: the last resort
            outcome = self._last_resort(state, msg, exc, error, failure)
        self._tell_failure(state, msg, ctx, exc, outcome)
        return outcome

    # -- event status ----------------------------------------------------------------------------------------
    def _tell(self, report: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        """Tell the event-status recorder; its failure is logged, never the record's."""
        try:
            report(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            self._untold(exc)

    def _untold(self, exc: Exception) -> None:
        try:
            log.warning("event status not recorded", group=self.group, error=repr(exc))
        except Exception:  # noqa: BLE001, S110
            pass

    def _tell_failure(
        self,
        state: PartitionState,
        msg: Message,
        ctx: MessageContext | None,
        exc: BaseException,
        outcome: Outcome,
    ) -> None:
        if isinstance(outcome, Rerun):
            due = int(time.time() * 1000 + outcome.delay_s * 1000)
            self._tell(self.outcomes.retrying, msg, ctx, "blocking", outcome.redo.attempt - 1, due, exc)
        elif isinstance(outcome, Forward) and outcome.kind == "retry":
            due = h.header_int(outcome.headers, h.DUE_TIME) or 0
            attempt = h.header_int(outcome.headers, h.ATTEMPT) or 1
            self._tell(self.outcomes.retrying, msg, ctx, outcome.tier or outcome.topic, attempt, due, exc)
        elif isinstance(outcome, Forward):
            self._tell(self.outcomes.dead_lettered, msg, ctx, exc, outcome.reason, state.token)
        elif isinstance(outcome, Drop):
            self._tell(self.outcomes.dead_lettered, msg, ctx, exc, outcome.reason, state.token, dropped=True)

    def _failure(
        self,
        state: PartitionState,
        msg: Message,
        exc: BaseException,
        ctx: MessageContext | None,
        redo: Redo | None,
    ) -> Failure:
        timestamp = msg.timestamp()[1]
        return Failure(
            exc=exc,
            source_topic=state.source_topic,
            tier=state.tier,
            topic=msg.topic(),  # type: ignore[arg-type]
            partition=msg.partition(),  # type: ignore[arg-type]
            offset=msg.offset(),  # type: ignore[arg-type]
            timestamp_ms=timestamp,
            headers=msg.headers(),
            attempt=ctx.attempt if ctx is not None else (redo.attempt if redo is not None else 1),
            idempotency_key=ctx.idempotency_key if ctx is not None else None,
            provenance=ctx.provenance if ctx is not None else _provenance(state, msg),
            first_failure_ms=redo.first_failure_ms if redo is not None else None,
            decoded=ctx is not None,
        )

    def _last_resort(
        self,
        state: PartitionState,
        msg: Message,
        exc: BaseException,
        error: BaseException,
        failure: Failure | None,
    ) -> Outcome:
        if failure is None:
            failure = Failure(
                exc=exc,
                source_topic=state.source_topic,
                tier=state.tier,
                topic=state.topic,
                partition=state.partition,
                offset=msg.offset() or 0,
                timestamp_ms=0,
                headers=None,
                attempt=1,
            )
        outcome = self.router.last_resort(failure, error)
        try:
            log.error(
                "routing a failure failed; dead-lettering as is", error=repr(error), offset=msg.offset()
            )
        except Exception:  # noqa: BLE001, S110
            pass
        return outcome

    def _log_failure(
        self, state: PartitionState, msg: Message, exc: BaseException, name: str, ctx: MessageContext | None
    ) -> None:
        try:
            suppressed = self._log_limit.allow((state.source_topic, name))
            if suppressed is None:
                return
            log.warning(
                "handler failed" if ctx is not None else "message failed before its handler",
                group=self.group,
                topic=msg.topic(),
                partition=msg.partition(),
                offset=msg.offset(),
                attempt=ctx.attempt if ctx else None,
                event_id=ctx.idempotency_key if ctx else None,
                error=f"{name}: {exc}",
                similar_suppressed=suppressed,
            )
        except Exception:  # noqa: BLE001, S110 - a log line that cannot be written must not stop the record
            pass

    # -- idempotency ----------------------------------------------------------------------------------------------
    def _store_wait(
        self,
        ctx: MessageContext,
        redo: Redo | None,
        error: IdempotencyStoreError | None,
        *,
        handled: bool = False,
    ) -> Rerun:
        """Run the message again once the store answers, or the other worker's claim is done. Never skip it."""
        waits = redo.store_waits if redo is not None else 0
        if error is not None and self._log_limit.allow(("store", self.group)) is not None:
            try:
                log.warning("idempotency store unavailable; waiting", group=self.group, error=str(error))
            except Exception:  # noqa: BLE001, S110
                pass
        following = Redo(
            attempt=ctx.attempt,
            first_failure_ms=redo.first_failure_ms if redo is not None else None,
            store_waits=waits + 1,
            handled=handled,
        )
        delay = STORE_BACKOFF_S[min(waits, len(STORE_BACKOFF_S) - 1)]
        return Rerun(delay, "store-unavailable" if error is not None else "claim-busy", following)

    def _registry_wait(self, redo: Redo | None, error: SchemaRegistryUnavailableError) -> Rerun:
        """Decode again once the schema registry answers: its outage is not the record's fault."""
        waits = redo.store_waits if redo is not None else 0
        if self._log_limit.allow(("registry", self.group)) is not None:
            try:
                log.warning("schema registry unavailable; waiting", group=self.group, error=str(error))
            except Exception:  # noqa: BLE001, S110
                pass
        following = Redo(
            attempt=redo.attempt if redo is not None else 1,
            first_failure_ms=redo.first_failure_ms if redo is not None else None,
            store_waits=waits + 1,
        )
        return Rerun(STORE_BACKOFF_S[min(waits, len(STORE_BACKOFF_S) - 1)], "registry-unavailable", following)

    def _release(self, key: Key) -> None:
        try:
            self.store.release(key)
            self.in_flight.drop_one(key)
        except Exception as exc:  # noqa: BLE001 - the lease expires by itself (and so does the key here)
            try:
                log.warning("cannot release claim", group=self.group, error=str(exc))
            except Exception:  # noqa: BLE001, S110
                pass

    # -- context ---------------------------------------------------------------------------------------------------
    def _context(
        self, state: PartitionState, msg: Message, event: Event, redo: Redo | None
    ) -> MessageContext:
        headers = msg.headers()
        provenance = _provenance(state, msg) if state.tier is not None else None
        if redo is not None:
            attempt = redo.attempt
        elif provenance is not None:
            attempt = provenance.attempt + 1
        else:
            attempt = 1
        key = self._idempotency_key(state, msg, headers, event, provenance)
        shown = key if type(key) is str else key.decode("utf-8", "backslashreplace")  # type: ignore[union-attr]
        return MessageContext(
            msg,
            group=self.group,
            topic=state.source_topic,
            attempt=attempt,
            idempotency_key=shown,
            store_key=key,
            event_type=event.avro_name,
            store=self.store,
            provenance=provenance,
            event_id=getattr(event, "event_id", None),
            outbox=self.outbox,
            headers=headers or [],  # type: ignore[arg-type]  # a consumed message: a list of pairs
        )

    def _idempotency_key(
        self,
        state: PartitionState,
        msg: Message,
        headers: Any,
        event: Event | None,
        provenance: Provenance | None,
    ) -> Key:
        """The key the store is asked about (the handler and the logs see it as text).

        A header key is any bytes: valid UTF-8 is used as text; anything else as the exact bytes (shown with
        backslash escapes).
        """
        if self._key_field is not None:
            return str(getattr(event, self._key_field))
        if self._use_header and headers:
            for name, value in headers:
                if name == IDEMPOTENCY_KEY and value:
                    if isinstance(value, str):
                        return value
                    try:
                        return value.decode("utf-8")  # type: ignore[no-any-return]
                    except UnicodeDecodeError:
                        return bytes(value)
        if provenance is not None:  # the original coordinates survive in the provenance headers
            return f"{provenance.original_topic}/{provenance.original_partition}/{provenance.original_offset}"
        return f"{msg.topic()}/{msg.partition()}/{msg.offset()}"


def _provenance(state: PartitionState, msg: Message) -> Provenance | None:
    """The provenance a retry record carries; None on a main topic, or when it is unreadable (then the record
    is counted from here: its next failure is its first)."""
    if state.tier is None:
        return None
    try:
        return Provenance.from_headers(msg.headers())
    except InvalidProvenanceError:
        return None
