"""``kep dlq show``: dead-letter records with their decoded event, error, traceback and provenance."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from kep.consumers.dlq.errors import InvalidFilterError
from kep.consumers.dlq.reader import BEGINNING, TopicReader
from kep.consumers.dlq.records import DeadLetterRecord, marker_from, record_from
from kep.consumers.retry.headers import PROVENANCE_HEADERS
from kep.producers.headers import EVENT_TYPE, SCHEMA
from kep.schemas.codec import EventCodec
from kep.schemas.errors import KepError
from kep.topology.settings import KafkaSettings


def fetch_records(
    kafka: KafkaSettings,
    topic: str,
    *,
    partition: int | None = None,
    offset: int | None = None,
    limit: int = 10,
    idle_timeout: float = 30.0,
) -> list[DeadLetterRecord]:
    """Dead letters of ``topic`` (replay markers skipped).

    With ``partition`` and ``offset``: up to ``limit`` records from that offset on, in offset order. Otherwise
    the ``limit`` oldest records (by dead-lettering time) of one partition or of the whole topic.
    """
    if limit < 1:
        raise InvalidFilterError(f"--limit {limit}: expected at least 1")
    if offset is not None and partition is None:
        raise InvalidFilterError("--offset needs --partition")
    if offset is not None and offset < 0:
        raise InvalidFilterError(f"--offset {offset}: expected an offset >= 0")
    with TopicReader(kafka, idle_timeout=idle_timeout) as reader:
        partitions = reader.partitions(topic)
        if partition is not None and partition not in partitions:
            known = f"0..{len(partitions) - 1}"
            raise InvalidFilterError(f"--partition {partition}: topic {topic!r} has partitions {known}")
        chosen = partitions if partition is None else [partition]
        start = BEGINNING if offset is None else offset
        records = []
        for msg in reader.read({(topic, p): start for p in chosen}):
            if marker_from(msg) is None:
                records.append(record_from(msg))
                if offset is not None and len(records) >= limit:
                    break
    if offset is None:
        records.sort(key=lambda r: (r.dead_lettered_ms, r.partition, r.offset))
    return records[:limit]


def describe(record: DeadLetterRecord, codec: EventCodec | None) -> dict[str, Any]:
    """A JSON-ready view of ``record``: coordinates, provenance, headers, and the decoded event or raw hex."""
    view: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp_ms,
        "dead_lettered_at": iso_ms(record.dead_lettered_ms),
        "key": _text(record.key),
        "key_hex": _hex_unless_text(record.key),
        "event_type": _header_text(record, EVENT_TYPE),
        "schema": _header_text(record, SCHEMA),
        "provenance": _provenance_view(record),
        "provenance_error": record.provenance_error,
        "headers": [
            {"name": name, "value": _text(value), "value_hex": _hex_unless_text(value)}
            for name, value in record.headers
            if name not in PROVENANCE_HEADERS
        ],
        "value_size": None if record.value is None else len(record.value),
        "event": None,
        "decode_error": None,
        "value_hex": None,
    }
    if record.value is None:
        view["decode_error"] = "no value (tombstone)"
        return view
    if codec is None:
        view["value_hex"] = record.value.hex()
        return view
    try:
        event = codec.decode(record.value)
    except KepError as exc:
        view["decode_error"] = f"{type(exc).__name__}: {exc}"
        view["value_hex"] = record.value.hex()
    else:
        view["event"] = event.model_dump(mode="json")
        view["event_type"] = view["event_type"] or event.avro_name
    return view


def iso_ms(epoch_ms: int | None) -> str | None:
    """``epoch_ms`` as an ISO 8601 UTC time with milliseconds, e.g. ``2024-05-01T12:00:00.000Z``."""
    if epoch_ms is None or epoch_ms < 0:
        return None
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _provenance_view(record: DeadLetterRecord) -> dict[str, Any] | None:
    if record.provenance is None:
        return None
    view = asdict(record.provenance)
    view["first_failure_at"] = iso_ms(record.provenance.first_failure_ms)
    view["last_failure_at"] = iso_ms(record.provenance.last_failure_ms)
    view["original_timestamp_at"] = iso_ms(record.provenance.original_timestamp_ms)
    return view


def _header_text(record: DeadLetterRecord, name: str) -> str | None:
    for key, value in record.headers:
        if key == name:
            return _text(value)
    return None


def _hex_unless_text(data: bytes | None) -> str | None:
    """Hex of ``data`` when it is not UTF-8 text (then ``_text`` gives ``None``)."""
    if data is None or _text(data) is not None:
        return None
    return data.hex()


def _text(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
