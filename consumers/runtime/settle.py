"""Settling outcomes: the only code that finishes offsets, forwards records and waits.

A lane processes a message into an outcome value (``consumers.outcome``) and hands it to ``Settler.settle``:

* ``HANDLED``, ``DUPLICATE``: the offset is finished.
* ``Rerun``: the lane waits on the partition's cancellation token, then runs the message again (or, revoked
  meanwhile, leaves it unfinished and uncommitted for the next owner).
* ``Forward``: the original key and value go to the retry or dead-letter topic with the outcome's headers; the
  offset is finished when the broker acknowledged the record, never before.
* ``Drop``: the offset is finished with an error log naming why (dead letters disabled).

A record must fit its destination: the limit is the topic's ``max.message.bytes`` (read when the worker
starts). A retry record too large for its tier, or refused by it, goes to the dead-letter topic instead; a
dead letter too large, or refused, is sent again with its value cut (``kep-truncated`` gives the original size,
``kep-forward-error`` says why), then, if that is refused too, with the provenance alone. Only when even that is
refused is the message dropped, with an error log: one record never stops its partition.

Threads: ``settle`` runs on lane threads (it calls ``produce``, which is thread-safe, and never polls). Delivery
callbacks, resends and ``poll``/``flush`` run on the poll thread, the only thread that polls the producer.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

import structlog
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from kep.consumers.outcome import DUPLICATE, HANDLED, Drop, Forward, Outcome, Redo, Rerun
from kep.consumers.retry.headers import PROVENANCE_HEADERS
from kep.consumers.runtime.partition import PartitionState
from kep.producers import headers as h

log = structlog.get_logger(__name__)

#: librdkafka's own default ``message.max.bytes``: the limit of a topic that reports none.
DEFAULT_MAX_MESSAGE_BYTES: Final = 1_000_000
#: Bytes kept free under a topic's limit for the record batch's own framing.
HEADROOM: Final = 1024
#: In the last-resort form of a dead letter, each kept header value and the key are cut to this.
MINIMAL_FIELD_BYTES: Final = 1024
#: Errors that are about the record itself: sending it again unchanged cannot help.
RECORD_REFUSED: Final = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.INVALID_MSG,
        KafkaError._INVALID_ARG,
        KafkaError._BAD_MSG,
        KafkaError.POLICY_VIOLATION,
    }
)
_KEEP_IN_MINIMAL: Final = PROVENANCE_HEADERS | {h.IDEMPOTENCY_KEY, h.EVENT_TYPE, h.SCHEMA, h.TRACEPARENT}
_SEND_BACKOFF_S: Final = (0.05, 0.1, 0.25, 0.5, 1.0)


class SettleMetrics(Protocol):
    def skipped_duplicate(self, topic: str) -> None: ...
    def retried(self, topic: str, tier: str) -> None: ...
    def dead_lettered(self, topic: str) -> None: ...


@dataclass(frozen=True, slots=True)
class _Record:
    """A record on its way to a retry or dead-letter topic. ``stage``: 0 as decided, 1 value cut, 2 provenance
    alone."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]]
    kind: str
    dead_letter_topic: str | None
    stage: int = 0


def record_size(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, Any]]) -> int:
    """An upper estimate of a record's size on the wire, uncompressed."""
    size = 64 + (len(key) if key else 0) + (len(value) if value else 0)
    for name, header_value in headers:
        size += 16 + len(name.encode("utf-8", "replace")) + (len(header_value) if header_value else 0)
    return size


class Settler:
    """Settles the outcomes of one worker. ``producer`` forwards to retry and dead-letter topics (``None``: the
    group has neither); ``limits`` maps those topics to their ``max.message.bytes``."""

    def __init__(
        self,
        *,
        group: str,
        producer: Producer | None,
        limits: Mapping[str, int] | None = None,
        metrics: SettleMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.group = group
        self.producer = producer
        self.limits = dict(limits or {})
        self.metrics = metrics
        self._clock = clock
        self._resend: deque[tuple[PartitionState, int, _Record]] = deque()  # poll thread only
        self._logged: dict[str, float] = {}
        self._polled_at = 0.0  # poll thread only

    # -- lane threads ---------------------------------------------------------------------------------------
    def settle(self, state: PartitionState, msg: Message, outcome: Outcome) -> Redo | None:
        """Act on ``outcome``. Returns what to run the message again with, or None when the lane is done with it
        (finished, handed to the producer, or the partition was revoked)."""
        if outcome is HANDLED:
            state.tracker.done(msg.offset())  # type: ignore[arg-type]
            return None
        if outcome is DUPLICATE:
            self.metrics.skipped_duplicate(state.source_topic)
            state.tracker.done(msg.offset())  # type: ignore[arg-type]
            return None
        if isinstance(outcome, Rerun):
            if outcome.reason == "retry-in-place":
                self._count(self.metrics.retried, state.source_topic, "blocking")
            if state.token.wait(outcome.delay_s):
                return None  # revoked or stopping: left unfinished, so never committed
            return outcome.redo
        if isinstance(outcome, Forward):
            self._forward(state, msg, outcome)
            return None
        if isinstance(outcome, Drop):
            self._drop(state, msg.offset(), msg.topic(), msg.partition(), outcome.reason, outcome.error)  # type: ignore[arg-type]
            return None
        raise TypeError(f"not an outcome: {outcome!r}")  # pragma: no cover - the types say so

    def _forward(self, state: PartitionState, msg: Message, forward: Forward) -> None:
        offset: int = msg.offset()  # type: ignore[assignment]
        record = _Record(
            forward.topic, msg.key(), msg.value(), forward.headers, forward.kind, forward.dead_letter_topic
        )
        fitted = self._fitted(record)
        if fitted is None or self.producer is None:
            why = (
                "no producer"
                if self.producer is None
                else "too large for its retry topic and no dead-letter topic"
            )
            self._drop(state, offset, msg.topic(), msg.partition(), f"message dropped: {why}", forward.reason)  # type: ignore[arg-type]
            return
        if fitted.kind == "retry":
            self._count(self.metrics.retried, state.source_topic, forward.tier or "?")
        else:
            self._count(self.metrics.dead_lettered, state.source_topic)
            self._log(
                "error",
                "dead-lettered",
                group=self.group,
                topic=fitted.topic,
                reason=forward.reason,
                source=msg.topic(),
                partition=msg.partition(),
                offset=offset,
            )
        self._send(state, offset, fitted)

    def _send(self, state: PartitionState, offset: int, record: _Record | None) -> None:
        """Hand ``record`` to the producer, waiting (on the token) for room in its queue; a record the client
        refuses at once goes on to its next form."""
        assert self.producer is not None
        failures = 0
        while record is not None:
            try:
                self.producer.produce(
                    record.topic,
                    record.value,
                    record.key,
                    headers=list(record.headers),
                    on_delivery=self._on_delivery(state, offset, record),
                )
                return
            except BufferError:
                if state.token.wait(0.005):  # the poll thread makes room
                    return
            except Exception as exc:  # noqa: BLE001 - KafkaException, or TypeError for a header it cannot take
                error = _kafka_error(exc)
                if error is None or error.code() in RECORD_REFUSED:
                    record = self._refused(record, _describe(record.topic, exc))
                    continue
                self._log_limited(
                    "forward", "cannot forward; trying again", topic=record.topic, error=str(exc)
                )
                if state.token.wait(_SEND_BACKOFF_S[min(failures, len(_SEND_BACKOFF_S) - 1)]):
                    return
                failures += 1
        self._drop(state, offset, "", -1, "message dropped: no form of it could be forwarded", "")

    # -- the poll thread -----------------------------------------------------------------------------------
    def _on_delivery(self, state: PartitionState, offset: int, record: _Record) -> Callable[[Any, Any], None]:
        def delivered(err: KafkaError | None, _msg: Any) -> None:
            if err is None:
                state.tracker.done(offset)
                return
            if state.token.cancelled:
                return  # revoked: the next owner reads the message again
            if err.code() in RECORD_REFUSED:
                following = self._refused(
                    record, f"{record.topic} refused the record: {err.name()}: {err.str()}"
                )
                if following is None:
                    self._drop(
                        state, offset, "", -1, "message dropped: no form of it could be forwarded", err.str()
                    )
                    return
                self._resend.append((state, offset, following))
                return
            self._log_limited(
                "forward", "forwarding failed; sending again", topic=record.topic, error=err.str()
            )
            self._resend.append((state, offset, record))

        return delivered

    def poll(self) -> None:
        """Serve delivery callbacks and send again what failed. Poll thread only.

        A call into the client gives up the GIL, and getting it back behind busy lanes costs a switch interval,
        so the producer is polled only while it has records in flight, and otherwise once a second (its own
        errors)."""
        producer = self.producer
        if producer is None:
            return
        if len(producer) or self._clock() - self._polled_at >= 1.0:
            self._polled_at = self._clock()
            producer.poll(0)
        if self._resend:
            self._send_pending()

    def flush(self, timeout: float) -> None:
        """Wait up to ``timeout`` for every forwarded record to be acknowledged. Poll thread only."""
        if self.producer is None:
            return
        deadline = self._clock() + timeout
        while True:
            left = self.producer.flush(max(0.0, deadline - self._clock()))
            self._send_pending()
            if (not left and not self._resend) or self._clock() >= deadline:
                return

    def _send_pending(self) -> None:
        assert self.producer is not None
        pending, self._resend = self._resend, deque()
        while pending:
            state, offset, record = pending.popleft()
            if state.token.cancelled:
                continue
            try:
                self.producer.produce(
                    record.topic,
                    record.value,
                    record.key,
                    headers=list(record.headers),
                    on_delivery=self._on_delivery(state, offset, record),
                )
            except BufferError:
                self._resend.append((state, offset, record))
                self._resend.extend(pending)
                return
            except Exception as exc:  # noqa: BLE001
                error = _kafka_error(exc)
                if error is None or error.code() in RECORD_REFUSED:
                    following = self._refused(record, _describe(record.topic, exc))
                    if following is None:
                        self._drop(
                            state, offset, "", -1, "message dropped: no form of it could be forwarded", ""
                        )
                    else:
                        pending.append((state, offset, following))
                else:
                    self._log_limited(
                        "forward", "cannot forward; trying again", topic=record.topic, error=str(exc)
                    )
                    self._resend.append((state, offset, record))

    # -- fitting a record to its topic -----------------------------------------------------------------------
    def limit(self, topic: str) -> int:
        return self.limits.get(topic, DEFAULT_MAX_MESSAGE_BYTES)

    def _fitted(self, record: _Record) -> _Record | None:
        """``record`` if it fits its topic, else its next form (see the module docstring)."""
        limit = self.limit(record.topic)
        size = record_size(record.key, record.value, record.headers)
        if size <= limit - HEADROOM:
            return record
        why = f"record of {size} bytes exceeds max.message.bytes {limit} of {record.topic}"
        return self._refused(record, why)

    def _refused(self, record: _Record, why: str) -> _Record | None:
        """The form of ``record`` to send once ``why`` stopped the current one; None when none is left."""
        if record.kind == "retry":
            if record.dead_letter_topic is None:
                return None
            headers = [(n, v) for n, v in record.headers if n not in (h.DUE_TIME, h.FORWARD_ERROR)]
            headers.append((h.FORWARD_ERROR, _bounded(why)))
            dead = _Record(record.dead_letter_topic, record.key, record.value, headers, "dead-letter", None)
            return self._fitted(dead)
        if record.stage == 0:
            return self._cut(record, why)
        if record.stage == 1:
            return self._minimal(record, why)
        return None

    def _cut(self, record: _Record, why: str) -> _Record:
        """The dead letter with its value cut to fit, ``kep-truncated`` giving the original size."""
        value = record.value or b""
        headers = [(n, v) for n, v in record.headers if n not in (h.FORWARD_ERROR, h.TRUNCATED)]
        headers += [(h.FORWARD_ERROR, _joined(record, why)), (h.TRUNCATED, str(len(value)).encode())]
        room = self.limit(record.topic) - HEADROOM - record_size(record.key, None, headers)
        if room < 0:
            return self._minimal(record, why)
        return replace(record, value=value[:room], headers=headers, stage=1)

    def _minimal(self, record: _Record, why: str) -> _Record:
        """The dead letter as provenance alone: no value, the key and kept headers cut short."""
        value = record.value or b""
        headers = [
            (n, v[:MINIMAL_FIELD_BYTES] if v else v)
            for n, v in record.headers
            if n in _KEEP_IN_MINIMAL and n not in (h.FORWARD_ERROR, h.TRUNCATED)
        ]
        headers += [(h.FORWARD_ERROR, _joined(record, why)), (h.TRUNCATED, str(len(value)).encode())]
        key = record.key[:MINIMAL_FIELD_BYTES] if record.key else record.key
        return replace(record, key=key, value=None, headers=headers, stage=2)

    # -- finishing without forwarding -----------------------------------------------------------------------
    def _drop(
        self, state: PartitionState, offset: int, topic: str, partition: int, why: str, error: str
    ) -> None:
        self._log(
            "error",
            why,
            group=self.group,
            topic=topic or state.topic,
            partition=partition if partition >= 0 else state.partition,
            offset=offset,
            error=error,
        )
        state.tracker.done(offset)

    # -- logs and metrics that cannot stop a message -----------------------------------------------------------
    def _log(self, level: str, event: str, **fields: Any) -> None:
        try:
            getattr(log, level)(event, **fields)
        except Exception:  # noqa: BLE001 - a log line must never stop a message
            pass

    def _log_limited(self, key: str, event: str, **fields: Any) -> None:
        now = self._clock()
        if now - self._logged.get(key, -60.0) >= 10.0:
            self._logged[key] = now
            self._log("warning", event, **fields)

    def _count(self, metric: Callable[..., None], *labels: str) -> None:
        try:
            metric(*labels)
        except Exception:  # noqa: BLE001 - nor may a metric
            pass


def _kafka_error(exc: BaseException) -> KafkaError | None:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def _describe(topic: str, exc: BaseException) -> str:
    error = _kafka_error(exc)
    if error is not None:
        return f"{topic} refused the record: {error.name()}: {error.str()}"
    return f"{topic}: the client refused the record: {type(exc).__name__}: {exc}"


def _joined(record: _Record, why: str) -> bytes:
    """``why`` after the reasons the record already carries (each step of its way to the dead-letter topic)."""
    before = h.header_bytes(record.headers, h.FORWARD_ERROR)
    if before and why.encode("utf-8", "replace") not in before:
        return _bounded(before.decode("utf-8", "replace") + "; " + why)
    return _bounded(why)


def _bounded(text: str) -> bytes:
    return text.encode("utf-8", "replace")[:MINIMAL_FIELD_BYTES]
