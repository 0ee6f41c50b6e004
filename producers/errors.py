"""Errors raised by the producers package.

Hierarchy::

    KepError
    └── ProducerError
        ├── RoutingError                 the event cannot be sent where it was asked to go
        │   ├── UnknownTopicError        a topic the topology does not declare (names the topic)
        │   ├── WrongEventTypeError      the topic does not carry this event type (names both)
        │   └── AmbiguousTopicError      no topic given and several (or none) carry the event type
        ├── InvalidDelayError            a ``deliver_at``/``delay`` that cannot be honoured (names why)
        ├── InvalidTraceparentError      a ``traceparent`` that is not W3C trace context
        ├── InvalidHeaderError           a caller header that kep sets itself
        ├── MissingKeyError              no key given and the event has no key field value
        ├── BackpressureTimeoutError     the local queue stayed full for ``publish_block_timeout_s``
        ├── ProducerClosedError          publishing after ``close()``
        ├── DeliveryError                the broker did not acknowledge a record (``code``: Kafka's)
        ├── DeliveryTimeoutError         ``publish_and_wait`` got no acknowledgement in time
        ├── SampleError                  generated sample values do not satisfy an event model
        └── OutboxError                  the transactional outbox cannot take or relay a record

Nothing in this hierarchy carries record values or secrets.
"""

from __future__ import annotations

from kep.schemas.errors import KepError


class ProducerError(KepError):
    """Something went wrong publishing a record."""


class InvalidDelayError(ProducerError):
    """``deliver_at`` and ``delay`` both given, a naive datetime, a negative delay, a delay past the topology's
    ``delays.max_delay``, or a delayed publish with no ``delays:`` in the topology."""


class RoutingError(ProducerError):
    """The event cannot be sent to the topic that was asked for, or no topic could be chosen."""


class UnknownTopicError(RoutingError):
    """The topic is not declared in the topology."""

    def __init__(self, topic: str, known: list[str] | None = None) -> None:
        hint = f"; known topics: {', '.join(sorted(known))}" if known else ""
        super().__init__(f"topic {topic!r} is not in the topology{hint}")
        self.topic = topic


class WrongEventTypeError(RoutingError):
    """The topic's value schema does not include the event type."""

    def __init__(self, topic: str, event_type: str, allowed: list[str]) -> None:
        super().__init__(
            f"topic {topic!r} does not carry {event_type!r} events "
            f"(it carries: {', '.join(allowed) or 'nothing'})"
        )
        self.topic = topic
        self.event_type = event_type
        self.allowed = allowed


class AmbiguousTopicError(RoutingError):
    """No topic was given and the event type maps to several topics, or to none."""

    def __init__(self, event_type: str, candidates: list[str]) -> None:
        if candidates:
            reason = f"is carried by several topics ({', '.join(candidates)}); pass topic="
        else:
            reason = "is carried by no topic in the topology; pass topic= or declare one"
        super().__init__(f"event type {event_type!r} {reason}")
        self.event_type = event_type
        self.candidates = candidates


class InvalidTraceparentError(ProducerError):
    """A ``traceparent`` value that does not have the W3C trace-context shape."""


class InvalidHeaderError(ProducerError):
    """A caller header that kep sets itself (``kep-event-type``, ``kep-schema``, ...)."""


class MissingKeyError(ProducerError):
    """No key was passed and the event's key field is empty or missing."""


class BackpressureTimeoutError(ProducerError):
    """The producer's local queue stayed full for longer than ``publish_block_timeout_s``."""

    def __init__(self, topic: str, waited_s: float) -> None:
        super().__init__(
            f"producer queue full for {waited_s:.1f}s while publishing to {topic!r}; "
            "the broker is slow or unreachable"
        )
        self.topic = topic
        self.waited_s = waited_s


class ProducerClosedError(ProducerError):
    """The producer was closed."""


class DeliveryError(ProducerError):
    """The broker did not acknowledge a record.

    ``code`` is the Kafka error code (``confluent_kafka.KafkaError`` constants), ``name`` its symbolic name,
    ``reason`` a readable description and ``retriable`` whether sending again may succeed.
    """

    def __init__(
        self, topic: str, partition: int | None, code: int, name: str, reason: str, *, retriable: bool = False
    ) -> None:
        where = topic if partition is None or partition < 0 else f"{topic}[{partition}]"
        super().__init__(f"delivery to {where} failed: {name}: {reason}")
        self.topic = topic
        self.partition = partition
        self.code = code
        self.name = name
        self.reason = reason
        self.retriable = retriable


class DeliveryTimeoutError(ProducerError, TimeoutError):
    """No acknowledgement arrived within the time ``publish_and_wait`` was given."""


class SampleError(ProducerError):
    """Generated sample values do not satisfy an event model (it should define ``kep_sample``)."""


class OutboxError(ProducerError):
    """The transactional outbox cannot take or relay a record: no SQL transaction to write it in, a connection
    of a kind it does not know, a table name that is not an identifier, a database it cannot open."""
