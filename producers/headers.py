"""Header names every kep record carries, shared by producers and consumers, and helpers to read them.

Values are bytes on the wire; integers are ASCII decimal. confluent-kafka gives a record's headers as a list
of ``(name, value)`` pairs (or ``None`` when there are none); names may repeat and the helpers return the
first match.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

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
#: On an event written through the transactional outbox by a handler: the id of the event it was handling.
CAUSATION_ID = "kep-causation-id"
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
#: On a dead-letter record whose value had to be cut to fit the topic: the original value's size in bytes.
TRUNCATED = "kep-truncated"
#: Why a record could not be forwarded where its policy sent it (too large for the topic, refused).
FORWARD_ERROR = "kep-forward-error"

# Delayed events (``docs/delayed-events.md``): on a record waiting in a delay-tier topic, the topic it is due on
# and when (milliseconds since the epoch). The forwarder removes both before producing to the destination.
DELAY_TOPIC = "kep-delay-topic"
DELAY_DUE = "kep-delay-due"
#: On a record the delay forwarder dead-lettered: why.
DELAY_ERROR = "kep-delay-error"

#: Bound on the size of ``kep-exception-traceback``, in bytes.
EXCEPTION_TRACEBACK_MAX_BYTES = 4096

#: Headers ``EventProducer.publish`` sets itself; callers pass them through dedicated arguments instead.
PRODUCER_HEADERS = frozenset({EVENT_TYPE, SCHEMA, IDEMPOTENCY_KEY, TRACEPARENT, DELAY_TOPIC, DELAY_DUE})

HeaderValue = str | bytes | None
#: Headers as confluent-kafka gives or takes them: a list of pairs (names may repeat) or a mapping.
HeaderList = Sequence[tuple[str, HeaderValue]] | Mapping[str, HeaderValue]


def _first(headers: HeaderList, name: str) -> HeaderValue:
    # a consumed message's headers are a list: tested first, as an ABC check costs a call on every read
    if type(headers) is not list and isinstance(headers, Mapping):
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
    """The first header called ``name`` as an integer (see :func:`parse_int`); ``None`` if absent or not one."""
    return parse_int(header_bytes(headers, name))


#: The integers a header may carry: signed 64-bit, as Kafka's own offsets and timestamps.
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1


def parse_int(raw: bytes | str | None) -> int | None:
    """``raw`` as a strict ASCII decimal integer within 64 bits (an optional leading ``-``), else ``None``.

    Nothing else is a number here: no spaces, no ``+``, no ``_``, no non-ASCII digits, no 5,000-digit values.
    A header is written by whoever can produce to the topic, so anything that is not plainly a number is
    treated as absent rather than trusted or allowed to raise.
    """
    if raw is None:
        return None
    if isinstance(raw, str):
        if not raw.isascii():
            return None
        raw = raw.encode("ascii")
    if not 0 < len(raw) <= 20:
        return None
    digits = raw[1:] if raw[:1] == b"-" else raw
    if not digits.isdigit():  # bytes.isdigit is ASCII-only, and False for b""
        return None
    value = int(raw)
    return value if INT64_MIN <= value <= INT64_MAX else None


def encode_int(value: int) -> bytes:
    """An integer as a header value (ASCII decimal)."""
    return str(int(value)).encode("ascii")
