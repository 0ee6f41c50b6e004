"""Where a failed message goes: a retry tier, the dead-letter topic, a rerun in place, or nowhere. Pure.

``Router.route(failure)`` applies the source topic's ``RetryPolicy`` and returns an outcome value
(``consumers.outcome``): a ``Forward`` with the provenance headers to send the original key and value with, a
``Rerun`` (blocking mode, or a group without a topology entry), or a ``Drop``. It holds no partition state, sends
nothing and finishes no offset: the runtime's settler does that with the value.

``last_resort`` is what a failure becomes when routing it failed too (a bug, an exception whose ``__str__``
raises): the dead-letter topic with as much as can be said safely, never a stall.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from kep.consumers.outcome import Drop, Forward, Redo, Rerun
from kep.consumers.retry.classify import ErrorClassifier
from kep.consumers.retry.headers import Headers, Provenance, bounded_message, qualified_name
from kep.consumers.retry.policy import DeadLetter, Retry, RetryPolicy
from kep.producers import headers as h

# In-place backoff when the group has no retry policy in the topology: 0.5 s doubling up to 30 s, forever.
UNMANAGED_BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed execution of a message, with what routing it needs.

    ``attempt`` is the execution that failed (1 = the first). ``provenance``: what the record carried when it
    came from a retry tier (``None`` when it came from its source topic, or carried none readable).
    ``first_failure_ms``: when its first in-place execution failed (blocking retries). ``decoded``: the event
    was decoded (an undecodable record cannot be retried in place by a group without a topology entry).
    """

    exc: BaseException
    source_topic: str
    tier: str | None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    headers: Headers | None
    attempt: int
    idempotency_key: str | None = None
    provenance: Provenance | None = None
    first_failure_ms: int | None = None
    decoded: bool = True


RouteOutcome = Forward | Rerun | Drop


class Router:
    """Applies each source topic's ``RetryPolicy``; ``dlq_topics`` maps a source topic to its dead-letter
    topic (``None``: dead letters disabled). A source topic without a policy belongs to a group absent from
    the topology: retryable failures are run again in place with backoff, fatal ones cannot be kept."""

    def __init__(
        self,
        *,
        group: str,
        policies: Mapping[str, RetryPolicy],
        dlq_topics: Mapping[str, str | None],
        classifier: ErrorClassifier,
        tracebacks: bool = True,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.group = group
        self.policies = dict(policies)
        self.dlq_topics = dict(dlq_topics)
        self.classifier = classifier
        self.tracebacks = tracebacks
        self._clock_ms = clock_ms

    def route(self, failure: Failure) -> RouteOutcome:
        policy = self.policies.get(failure.source_topic)
        if policy is None:
            return self._unmanaged(failure)
        now = self._clock_ms()
        seen = failure.provenance if failure.tier is not None else self._in_place(failure)
        decision = policy.decide(seen, failure.exc, now)
        dlq = self.dlq_topics.get(failure.source_topic)
        if isinstance(decision, Retry):
            if decision.tier is None:  # blocking mode: wait, then run again in place
                first = failure.first_failure_ms or now
                redo = Redo(attempt=failure.attempt + 1, first_failure_ms=first)
                return Rerun(max(0.0, (decision.due_ms - now) / 1000.0), "retry-in-place", redo)
            record = self._next_provenance(seen, failure, now, decision.due_ms)
            return Forward(
                decision.tier.topic,
                record.to_headers(failure.headers),
                "retry",
                dead_letter_topic=dlq,
                tier=decision.tier.suffix,
                reason="retry",
            )
        if isinstance(decision, DeadLetter) and dlq is not None:
            record = self._next_provenance(seen, failure, now, None)
            return Forward(dlq, record.to_headers(failure.headers), "dead-letter", reason=decision.reason)
        return Drop(
            f"message dropped: dead letters are disabled for {failure.source_topic} ({decision.reason})",
            _describe(failure.exc),
        )

    # -- provenance ------------------------------------------------------------------------------------------
    def _in_place(self, failure: Failure) -> Provenance | None:
        """The earlier in-place executions (blocking mode) as the policy counts them, or None on the first."""
        if failure.attempt <= 1:
            return None
        first = failure.first_failure_ms or self._clock_ms()
        return Provenance(
            original_topic=failure.source_topic,
            original_partition=failure.partition,
            original_offset=failure.offset,
            original_timestamp_ms=failure.timestamp_ms,
            consumer_group=self.group,
            attempt=failure.attempt - 1,
            first_failure_ms=first,
            last_failure_ms=first,
            exception_type="",
            exception_message="",
            exception_traceback="",
        )

    def _next_provenance(
        self, seen: Provenance | None, failure: Failure, now: int, due_ms: int | None
    ) -> Provenance:
        if seen is not None and failure.tier is not None:
            return seen.next_failure(failure.exc, now_ms=now, due_ms=due_ms, traceback=self.tracebacks)
        first = Provenance.first_failure(
            topic=failure.topic,
            partition=failure.partition,
            offset=failure.offset,
            timestamp_ms=failure.timestamp_ms,
            consumer_group=self.group,
            exc=failure.exc,
            now_ms=now,
            idempotency_key=failure.idempotency_key,
            due_ms=due_ms,
            traceback=self.tracebacks,
        )
        if seen is None:
            return first
        # blocking mode: keep the first failure time and the count of the in-place executions
        return replace(first, attempt=seen.attempt + 1, first_failure_ms=seen.first_failure_ms)

    # -- no policy ----------------------------------------------------------------------------------------------
    def _unmanaged(self, failure: Failure) -> RouteOutcome:
        """A group without a topology entry: retry in place with backoff forever; fatal errors cannot be kept."""
        if not failure.decoded or self.classifier.is_fatal(failure.exc):
            why = "fatal failure and no dead-letter topic (the group is not in the topology): message skipped"
            return Drop(why, _describe(failure.exc))
        delay = UNMANAGED_BACKOFF_S[min(failure.attempt - 1, len(UNMANAGED_BACKOFF_S) - 1)]
        return Rerun(delay, "retry-in-place", Redo(attempt=failure.attempt + 1))

    # -- when routing itself failed -----------------------------------------------------------------------------
    def last_resort(self, failure: Failure, error: BaseException) -> Forward | Drop:
        """The dead-letter topic for a failure whose routing raised ``error``: the original headers, the record's
        coordinates and both errors, built from nothing that can raise. A ``Drop`` when there is no dead-letter
        topic."""
        dlq = self.dlq_topics.get(failure.source_topic)
        text = f"{_describe(failure.exc)}; and routing it failed: {_describe(error)}"
        if dlq is None:
            return Drop(
                "message dropped: its failure could not be routed and there is no dead-letter topic", text
            )
        headers: list[tuple[str, bytes | None]] = []
        for pair in _safe_pairs(failure.headers):
            headers.append(pair)
        headers += [
            (h.ORIGINAL_TOPIC, failure.topic.encode("utf-8", "replace")),
            (h.ORIGINAL_PARTITION, str(failure.partition).encode()),
            (h.ORIGINAL_OFFSET, str(failure.offset).encode()),
            (h.ORIGINAL_TIMESTAMP, str(failure.timestamp_ms).encode()),
            (h.CONSUMER_GROUP, self.group.encode("utf-8", "replace")),
            (h.ATTEMPT, str(max(failure.attempt, 1)).encode()),
            (h.EXCEPTION_TYPE, _type_name(failure.exc).encode("utf-8", "replace")),
            (h.EXCEPTION_MESSAGE, text.encode("utf-8", "replace")[:1024]),
        ]
        return Forward(dlq, headers, "dead-letter", reason="routing-failed")


def _describe(exc: BaseException) -> str:
    return f"{_type_name(exc)}: {bounded_message(exc)}"


def _type_name(exc: BaseException) -> str:
    try:
        return qualified_name(type(exc))
    except Exception:  # noqa: BLE001 - a class with a broken __qualname__
        return "<unknown exception type>"


def _safe_pairs(headers: Headers | None) -> list[tuple[str, bytes | None]]:
    """The original headers without earlier provenance, as bytes; whatever cannot be read is left out."""
    from kep.consumers.retry.headers import PROVENANCE_HEADERS

    out: list[tuple[str, bytes | None]] = []
    try:
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
        for name, value in pairs:
            if not isinstance(name, str) or name in PROVENANCE_HEADERS:
                continue
            if isinstance(value, str):
                value = value.encode("utf-8", "replace")
            if value is None or isinstance(value, bytes):
                out.append((name, value))
    except Exception:  # noqa: BLE001 - headers that cannot even be listed: none
        return []
    return out
