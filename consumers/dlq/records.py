"""Dead-letter records as read from the topic, and the replay markers kept next to them.

A *replay marker* is a small record that ``kep dlq replay`` appends to the dead-letter topic, in the
partition of the record it replayed, once the republished copy was acknowledged. It is how a later replay
knows which records are already done, whatever filters that earlier run used. Markers have an empty value,
a unique key (``kep-replayed:<partition>:<offset>``, so they survive compaction) and these headers:

| header                     | value                                                           |
| -------------------------- | --------------------------------------------------------------- |
| ``kep-dlq-replayed-offset`` | offset of the replayed dead letter, in the marker's partition   |
| ``kep-dlq-replayed-to``     | where the copy went: ``topic/partition@offset``                 |
| ``kep-dlq-replayed-at``     | when (ms)                                                       |

Every dead-letter tool skips markers: they are bookkeeping, not dead letters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from kep.consumers.retry.headers import InvalidProvenanceError, Provenance, header_value

if TYPE_CHECKING:
    from confluent_kafka import Message

REPLAYED_OFFSET: Final = "kep-dlq-replayed-offset"
REPLAYED_TO: Final = "kep-dlq-replayed-to"
REPLAYED_AT: Final = "kep-dlq-replayed-at"

NO_PROVENANCE: Final = "(no provenance)"
BAD_PROVENANCE: Final = "(unreadable provenance)"

RecordHeaders = tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """One record of a dead-letter topic: its coordinates, exact bytes, headers and parsed provenance."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: RecordHeaders
    provenance: Provenance | None
    provenance_error: str | None = None

    @property
    def dead_lettered_ms(self) -> int:
        """When the record was dead-lettered: its last failure time, else the record's timestamp."""
        return self.provenance.last_failure_ms if self.provenance is not None else self.timestamp_ms

    @property
    def exception_type(self) -> str:
        """The qualified exception type, or a placeholder when the record has no readable provenance."""
        if self.provenance is not None:
            return self.provenance.exception_type or "(unknown)"
        return BAD_PROVENANCE if self.provenance_error else NO_PROVENANCE


@dataclass(frozen=True, slots=True)
class ReplayMarker:
    """A note in a dead-letter partition: the record at ``target_offset`` was replayed."""

    partition: int
    offset: int
    target_offset: int
    replayed_to: str | None
    replayed_at_ms: int | None


def record_from(msg: Message) -> DeadLetterRecord:
    """A ``DeadLetterRecord`` from a consumed message; unreadable provenance is reported, not raised."""
    headers = _headers(msg)
    try:
        provenance, problem = Provenance.from_headers(headers), None
    except InvalidProvenanceError as exc:
        provenance, problem = None, str(exc)
    return DeadLetterRecord(
        topic=msg.topic() or "",
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        timestamp_ms=msg.timestamp()[1],
        key=msg.key(),
        value=msg.value(),
        headers=headers,
        provenance=provenance,
        provenance_error=problem,
    )


def marker_from(msg: Message) -> ReplayMarker | None:
    """The replay marker in ``msg``, or ``None`` when it is an ordinary record."""
    headers = msg.headers()
    if not headers:
        return None
    raw = header_value(headers, REPLAYED_OFFSET)
    if raw is None or not raw.isdigit():
        return None
    to = header_value(headers, REPLAYED_TO)
    at = header_value(headers, REPLAYED_AT)
    return ReplayMarker(
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        target_offset=int(raw),
        replayed_to=to.decode("utf-8", "replace") if to is not None else None,
        replayed_at_ms=int(at) if at is not None and at.isdigit() else None,
    )


def marker_record(
    partition: int, target_offset: int, replayed_to: str, now_ms: int
) -> tuple[bytes, bytes, list[tuple[str, str | bytes | None]]]:
    """Key, value and headers of the marker for the record at ``target_offset`` of ``partition``."""
    key = f"kep-replayed:{partition}:{target_offset}".encode()
    headers: list[tuple[str, str | bytes | None]] = [
        (REPLAYED_OFFSET, str(target_offset).encode()),
        (REPLAYED_TO, replayed_to.encode()),
        (REPLAYED_AT, str(now_ms).encode()),
    ]
    return key, b"", headers


def _headers(msg: Message) -> RecordHeaders:
    raw = msg.headers()
    if not raw:
        return ()
    pairs: Sequence[tuple[str, str | bytes | None]] = list(raw.items()) if isinstance(raw, dict) else raw
    return tuple((name, value.encode() if isinstance(value, str) else value) for name, value in pairs)
