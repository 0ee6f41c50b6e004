"""What a codec caches per event type (writing) and per writer schema (reading).

Both wire formats share this: the writer schema of an event type is the newest local version of its name
(checked once against the model); reading resolves any writer schema of a name to that same newest version.
Writing uses the writer ``schemas._writer`` compiles for the schema, reading the reader ``schemas._reader``
compiles for the pair of schemas; either falls back to fastavro when nothing is compiled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from kep.schemas._binding import Builder, Dumper, builder, check_binding, dumper, plain_schema
from kep.schemas._reader import compile_reader
from kep.schemas._writer import RecordWriter, compile_writer
from kep.schemas.errors import DecodeError, EncodeError, SchemaError, SchemaNotFoundError, UnknownSchemaError
from kep.schemas.events import Event
from kep.schemas.fingerprint import canonical_form
from kep.schemas.registry import LocalSchemaRegistry, SchemaVersion

#: ``encode(event) -> bytes`` for one event type.
Encoder = Callable[[Event], bytes]
#: ``decode(data) -> event`` for data of one writer schema (the codec's header included).
EventReader = Callable[[bytes], Event]


@dataclass(frozen=True, slots=True)
class WritePlan:
    """How to write one event type: its schema version and ``write(header, event) -> header + body``."""

    event_type: type[Event]
    version: SchemaVersion
    write: RecordWriter


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """How to read data of one writer schema: resolve to ``reader`` (None: the same) and build the model."""

    name: str
    writer: dict[str, Any]
    reader: dict[str, Any] | None
    build: Builder


def write_plan(registry: LocalSchemaRegistry, event_type: type[Event]) -> WritePlan:
    """The newest local version of the event's name, checked against the model."""
    name = getattr(event_type, "avro_name", None)
    if name is None:
        raise SchemaNotFoundError(f"{event_type.__qualname__} is not a concrete event (it sets no avro_name)")
    version = registry.latest(name)
    check_binding(event_type, version.schema, f"schema {name} v{version.version} ({version.path})")
    write = compile_writer(version.schema)
    if write is None:
        write = fastavro_writer(_parse_plain(version.schema), dumper(event_type))
    return WritePlan(event_type, version, write)


def event_reader(
    registry: LocalSchemaRegistry,
    name: str,
    writer: dict[str, Any],
    source: str,
    raw: bytes,
    offset: int,
    *,
    compiled: bool = True,
) -> EventReader:
    """Read data of ``writer`` (JSON form, named ``name``, from ``source``), whose Avro body starts at
    ``offset``, as the newest local version: compiled when ``compile_reader`` can (and ``compiled``), else
    through fastavro."""
    try:
        reader = registry.latest(name)
        event_type = registry.model(name)
    except SchemaNotFoundError as exc:
        raise UnknownSchemaError(f"{source} is {name}, which cannot be read here: {exc}", raw=raw) from exc
    except SchemaError as exc:  # the schema cannot be a kep event model (it names the field)
        raise DecodeError(f"{source} is {name}, which kep cannot build a model for: {exc}", raw=raw) from exc
    check_binding(event_type, reader.schema, f"schema {name} v{reader.version} ({reader.path})")
    fast = compile_reader(writer, reader.schema, event_type, offset, name) if compiled else None
    if fast is not None:
        return fast
    same = canonical_form(writer) == canonical_form(reader.parsed)
    build = builder(event_type)  # SchemaError for models it cannot build (a union of several records)
    plan = ReadPlan(name, _parse_plain(writer), None if same else _parse_plain(reader.schema), build)

    def read(data: bytes) -> Event:
        return read_event(data, offset, plan)

    return read


def _parse_plain(schema: dict[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = parse_schema(plain_schema(schema), named_schemas={})  # type: ignore[assignment]
    return parsed


def fastavro_writer(parsed: dict[str, Any], dump: Dumper) -> RecordWriter:
    """``write(header, event)`` through fastavro, for schemas ``compile_writer`` does not compile."""

    def write(header: bytes, event: Any) -> bytes:
        out = BytesIO()
        out.write(header)
        schemaless_writer(out, parsed, dump(event))
        return out.getvalue()

    return write


def event_encoder(header: bytes, plan: WritePlan) -> Encoder:
    """``encode(event) -> header + Avro body`` for the event type of ``plan``; bad data is ``EncodeError``."""
    write = plan.write
    name = plan.version.name

    def encode(event: Event) -> bytes:
        try:
            return write(header, event)
        except Exception as exc:  # bad data raises ValueError, TypeError, AttributeError, KeyError...
            raise EncodeError(f"cannot encode {name} event {event.event_id!r}: {exc}") from exc

    return encode


def read_event(data: bytes, offset: int, plan: ReadPlan) -> Event:
    """The event whose Avro body starts at ``offset`` and must end exactly at the end of ``data``."""
    stream = BytesIO(data)
    stream.seek(offset)
    try:
        record = schemaless_reader(stream, plan.writer, plan.reader)
        event: Event = plan.build(record)  # type: ignore[arg-type]  # a record schema reads a dict
    except Exception as exc:  # EOFError, UnicodeDecodeError, IndexError, OverflowError (a timestamp)...
        reason = f"corrupt or truncated {plan.name} body ({len(data)} bytes): {type(exc).__name__}: {exc}"
        raise DecodeError(reason, raw=data) from exc
    if stream.tell() != len(data):
        raise DecodeError(
            f"{len(data) - stream.tell()} unexpected bytes after the {plan.name} record ({len(data)} bytes)",
            raw=data,
        )
    return event
