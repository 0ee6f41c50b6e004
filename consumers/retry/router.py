"""Where a failed message goes: a retry topic, the dead-letter topic, or a wait and a retry in place.

The original key and value bytes are forwarded unchanged with provenance headers. The message's offset is
marked finished only when the broker acknowledged the forwarded record, so the original offset is never
committed before the message is durably in its retry or dead-letter topic. A failed produce is sent again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

import structlog
from confluent_kafka import Message

from kep.consumers.context import MessageContext
from kep.consumers.retry.classify import ErrorClassifier
from kep.consumers.retry.headers import InvalidProvenanceError, Provenance
from kep.consumers.retry.policy import DeadLetter, Retry, RetryPolicy
from kep.consumers.runtime.partition import PartitionState
from kep.consumers.status.hook import NO_OUTCOMES, Outcomes
from kep.producers import headers as h
from kep.producers.delivery import DeliveryReport
from kep.producers.errors import DeliveryError
from kep.producers.producer import EventProducer

log = structlog.get_logger(__name__)

# In-place backoff when the group has no retry policy in the topology: 0.5 s doubling up to 30 s, forever.
UNMANAGED_BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)


class RouterMetrics(Protocol):
    def retried(self, topic: str, tier: str) -> None: ...
    def dead_lettered(self, topic: str) -> None: ...


class Router:
    """The worker's ``FailureHandler``: applies each source topic's ``RetryPolicy``."""

    def __init__(
        self,
        *,
        group: str,
        producer: EventProducer | None,
        policies: Mapping[str, RetryPolicy],
        dlq_topics: Mapping[str, str | None],
        classifier: ErrorClassifier,
        metrics: RouterMetrics,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        outcomes: Outcomes = NO_OUTCOMES,
    ) -> None:
        self.group = group
        self.producer = producer
        self.policies = dict(policies)
        self.dlq_topics = dict(dlq_topics)
        self.classifier = classifier
        self.metrics = metrics
        self._clock_ms = clock_ms
        self.outcomes = outcomes  # event status and batches (consumers/status): told each decision

    def handle(
        self, state: PartitionState, msg: Message, exc: BaseException, ctx: MessageContext | None
    ) -> float | None:
        policy = self.policies.get(state.source_topic)
        if policy is None:
            return self._unmanaged(state, msg, exc, ctx)
        now = self._clock_ms()
        provenance = self._provenance(state, msg, ctx)
        decision = policy.decide(provenance, exc, now)
        if isinstance(decision, Retry):
            if decision.tier is None:  # blocking mode: wait, then run again in place
                if ctx is not None:
                    ctx.first_failure_ms = ctx.first_failure_ms or now
                self.metrics.retried(state.source_topic, "blocking")
                self.outcomes.retrying(msg, ctx, "blocking", decision.attempt, decision.due_ms, exc)
                return max(0.0, (decision.due_ms - now) / 1000.0)
            record = self._next_provenance(provenance, state, msg, ctx, exc, now, decision.due_ms)
            self.metrics.retried(state.source_topic, decision.tier.suffix)
            self.outcomes.retrying(msg, ctx, decision.tier.suffix, decision.attempt, decision.due_ms, exc)
            self._forward(state, msg, decision.tier.topic, record.to_headers(msg.headers()))
            return None
        if isinstance(decision, DeadLetter):
            dlq = self.dlq_topics.get(state.source_topic)
            if dlq is not None and self.producer is not None:
                record = self._next_provenance(provenance, state, msg, ctx, exc, now, None)
                self.metrics.dead_lettered(state.source_topic)
                log.error(
                    "dead-lettered", group=self.group, topic=dlq, reason=decision.reason, offset=msg.offset()
                )
                self.outcomes.dead_lettered(msg, ctx, exc, decision.reason, state.cancelled)
                self._forward(state, msg, dlq, record.to_headers(msg.headers()))
                return None
        self.outcomes.dead_lettered(msg, ctx, exc, "dead letters disabled", state.cancelled, dropped=True)
        self._skip(state, msg, exc, "message dropped: dead letters are disabled for this topic")
        return None

    def _skip(self, state: PartitionState, msg: Message, exc: BaseException, why: str) -> None:
        """Finish a message that cannot be kept anywhere, loudly: the one place kep lets a message go."""
        log.error(
            why,
            group=self.group,
            topic=msg.topic(),
            partition=msg.partition(),
            offset=msg.offset(),
            error=f"{type(exc).__name__}: {exc}",
        )
        state.done(msg.offset())  # type: ignore[arg-type]

    # -- provenance ------------------------------------------------------------------------------------------
    def _provenance(
        self, state: PartitionState, msg: Message, ctx: MessageContext | None
    ) -> Provenance | None:
        """The provenance the message carries (retry tiers), or a synthetic one for in-place retries."""
        if state.tier is not None:
            try:
                return Provenance.from_headers(msg.headers())
            except InvalidProvenanceError as exc:
                log.warning("unreadable provenance headers; counting from here", error=str(exc))
                return None
        if ctx is not None and ctx.attempt > 1:  # blocking mode: the earlier in-place executions count
            first = ctx.first_failure_ms or self._clock_ms()
            return Provenance(
                original_topic=state.source_topic,
                original_partition=state.partition,
                original_offset=msg.offset(),  # type: ignore[arg-type]
                original_timestamp_ms=msg.timestamp()[1],
                consumer_group=self.group,
                attempt=ctx.attempt - 1,
                first_failure_ms=first,
                last_failure_ms=first,
                exception_type="",
                exception_message="",
                exception_traceback="",
            )
        return None

    def _next_provenance(
        self,
        provenance: Provenance | None,
        state: PartitionState,
        msg: Message,
        ctx: MessageContext | None,
        exc: BaseException,
        now: int,
        due_ms: int | None,
    ) -> Provenance:
        if provenance is not None and state.tier is not None:
            return provenance.next_failure(exc, now_ms=now, due_ms=due_ms)
        key = ctx.idempotency_key if ctx is not None else h.header_str(msg.headers(), h.IDEMPOTENCY_KEY)
        first = Provenance.first_failure(
            topic=msg.topic(),  # type: ignore[arg-type]
            partition=msg.partition(),  # type: ignore[arg-type]
            offset=msg.offset(),  # type: ignore[arg-type]
            timestamp_ms=msg.timestamp()[1],
            consumer_group=self.group,
            exc=exc,
            now_ms=now,
            idempotency_key=key,
            due_ms=due_ms,
        )
        if provenance is None:
            return first
        # blocking mode: keep the first failure time and the count of the in-place executions
        return replace(first, attempt=provenance.attempt + 1, first_failure_ms=provenance.first_failure_ms)

    # -- forwarding ------------------------------------------------------------------------------------------
    def _forward(
        self, state: PartitionState, msg: Message, topic: str, headers: list[tuple[str, Any]]
    ) -> None:
        assert self.producer is not None
        offset: int = msg.offset()  # type: ignore[assignment]
        key, value = msg.key(), msg.value()

        def delivered(report: DeliveryReport | None, error: DeliveryError | None) -> None:
            if error is None:
                state.done(offset)
                return
            log.warning("forwarding failed; sending again", topic=topic, offset=offset, error=str(error))
            if not state.cancelled.is_set():
                self._send(topic, key, value, headers, delivered)

        self._send(topic, key, value, headers, delivered)

    def _send(self, topic: str, key: Any, value: Any, headers: list[tuple[str, Any]], cb: Any) -> None:
        assert self.producer is not None
        self.producer.produce_raw(topic, key, value, headers, on_delivery=cb)

    # -- no policy ----------------------------------------------------------------------------------------------
    def _unmanaged(
        self, state: PartitionState, msg: Message, exc: BaseException, ctx: MessageContext | None
    ) -> float | None:
        """A group without a topology entry: retry in place with backoff forever; fatal errors cannot be kept."""
        if ctx is None or self.classifier.is_fatal(exc):
            why = "fatal failure and no dead-letter topic (the group is not in the topology): message skipped"
            self.outcomes.dead_lettered(msg, ctx, exc, "fatal", state.cancelled, dropped=True)
            self._skip(state, msg, exc, why)
            return None
        self.metrics.retried(state.source_topic, "blocking")
        delay = UNMANAGED_BACKOFF_S[min(ctx.attempt - 1, len(UNMANAGED_BACKOFF_S) - 1)]
        self.outcomes.retrying(msg, ctx, "blocking", ctx.attempt, self._clock_ms() + int(delay * 1000), exc)
        return delay
