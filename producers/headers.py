"""Header names every kep record carries, shared by producers and consumers, and helpers to read them.

Values are bytes on the wire; integers are ASCII decimal. confluent-kafka gives a record's headers as a list
of ``(name, value)`` pairs (or ``None`` when there are none); names may repeat and the helpers return the
first match.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

#: The Avro full name of the event, e.g. ``kep.orders.OrderPlaced``.
EVENT_TYPE = "kep-event-type"
#: ``sof:<16 hex digits>`` (single-object fingerprint) or ``sr:<id>`` (registry id).
SCHEMA = "kep-schema"
#: The event id, the key consumers deduplicate on.
IDEMPOTENCY_KEY = "kep-idempotency-key"
#: W3C trace context, when the caller has one.
TRACEPARENT = "traceparent"
#: The batch an event belongs to (``EventProducer.publish_batch``, the intake's batch endpoint), and how many
#: events the batch has. Consumers report the batch done when that many members reached a final state.
BATCH_ID = "kep-batch-id"
BATCH_SIZE = "kep-batch-size"
#: Set by ``kep dlq replay`` on the copies it republishes (milliseconds since the epoch).
REPLAYED_AT = "kep-replayed-at"

# Provenance added to retry and dead-letter records (every original header is kept as well).
ORIGINAL_TOPIC = "kep-original-topic"
ORIGINAL_PARTITION = "kep-original-partition"
ORIGINAL_OFFSET = "kep-original-offset"
ORIGINAL_TIMESTAMP = "kep-original-timestamp"
CONSUMER_GROUP = "kep-consumer-group"
ATTEMPT = "kep-attempt"
FIRST_FAILURE_TIME = "kep-first-failure-time"
LAST_FAILURE_TIME = "kep-last-failure-time"
EXCEPTION_TYPE = "kep-exception-type"
EXCEPTION_MESSAGE = "kep-exception-message"
EXCEPTION_TRACEBACK = "kep-exception-traceback"
DUE_TIME = "kep-due-time"

#: Bound on the size of ``kep-exception-traceback``, in bytes.
EXCEPTION_TRACEBACK_MAX_BYTES = 4096

#: Headers ``EventProducer.publish`` sets itself; callers pass them through dedicated arguments instead.
PRODUCER_HEADERS = frozenset({EVENT_TYPE, SCHEMA, IDEMPOTENCY_KEY, TRACEPARENT})

HeaderValue = str | bytes | None
#: Headers as confluent-kafka gives or takes them: a list of pairs (names may repeat) or a mapping.
HeaderList = Sequence[tuple[str, HeaderValue]] | Mapping[str, HeaderValue]


def _first(headers: HeaderList, name: str) -> HeaderValue:
    if isinstance(headers, Mapping):
        return headers.get(name)
    for key, value in headers:
        if key == name:
            return value
    return None


def header_bytes(headers: HeaderList | None, name: str) -> bytes | None:
    """The value of the first header called ``name`` as bytes, or ``None`` when absent or null."""
    if not headers:
        return None
    value = _first(headers, name)
    if value is None:
        return None
    return value.encode() if isinstance(value, str) else bytes(value)


def header_str(headers: HeaderList | None, name: str) -> str | None:
    """The first header called ``name`` decoded as UTF-8 (invalid bytes replaced), or ``None``."""
    raw = header_bytes(headers, name)
    return None if raw is None else raw.decode("utf-8", errors="replace")


def header_int(headers: HeaderList | None, name: str) -> int | None:
    """The first header called ``name`` as an ASCII decimal integer; ``None`` if absent or not a number."""
    text = header_str(headers, name)
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def encode_int(value: int) -> bytes:
    """An integer as a header value (ASCII decimal)."""
    return str(int(value)).encode("ascii")
