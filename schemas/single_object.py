"""``SingleObjectCodec``: Avro single-object encoding, the default wire format (no registry server needed).

Layout: ``C3 01`` (marker), 8 bytes of CRC-64-AVRO fingerprint of the writer schema (little-endian), then the
Avro binary body. The fingerprint names a version in the ``LocalSchemaRegistry``; the body is resolved to the
newest local version of the same name, so data written with ``OrderPlaced`` v1 reads as the v2 model.
"""

from __future__ import annotations

from kep.schemas._plans import Encoder, EventReader, WritePlan, event_encoder, event_reader, write_plan
from kep.schemas.errors import DecodeError, SchemaNotFoundError, UnknownSchemaError
from kep.schemas.events import Event
from kep.schemas.registry import LocalSchemaRegistry

__all__ = ["MAGIC", "SingleObjectCodec"]

MAGIC = b"\xc3\x01"
_HEADER = len(MAGIC) + 8


class SingleObjectCodec:
    """Encode and decode events as Avro single objects against a local registry (default: ``KEP_SCHEMAS``)."""

    def __init__(self, registry: LocalSchemaRegistry | None = None) -> None:
        self.registry = registry if registry is not None else LocalSchemaRegistry.default()
        self._writers: dict[type[Event], tuple[bytes, WritePlan]] = {}
        self._encoders: dict[type[Event], Encoder] = {}
        self._readers: dict[bytes, EventReader] = {}  # by the whole header: marker and fingerprint

    def __repr__(self) -> str:
        return f"SingleObjectCodec({self.registry!r})"

    def encode(self, event: Event, topic: str | None = None) -> bytes:
        """``C3 01`` + fingerprint + Avro body, written with the newest local schema of the event's name (the
        same on every topic)."""
        encode = self._encoders.get(type(event))
        if encode is None:
            encode = self.encoder(type(event))
        return encode(event)

    def encoder(self, event_type: type[Event], topic: str | None = None) -> Encoder:
        """``encode`` for events of exactly ``event_type``, minus the lookup: producers cache it per type."""
        encode = self._encoders.get(event_type)
        if encode is None:
            header, plan = self._writers.get(event_type) or self._write_plan(event_type)
            encode = self._encoders[event_type] = event_encoder(header, plan)
        return encode

    def decode(self, data: bytes) -> Event:
        """The event in ``data``. ``DecodeError``/``UnknownSchemaError`` keep the bytes in ``raw``."""
        read = self._readers.get(data[:_HEADER])
        if read is None:
            read = self._reader(data)
        return read(data)

    def schema_ref(self, event_type: type[Event], topic: str | None = None) -> str:
        """``sof:<16 hex>``: the fingerprint of the schema ``encode`` writes ``event_type`` with."""
        entry = self._writers.get(event_type) or self._write_plan(event_type)
        return entry[1].version.schema_ref

    def _write_plan(self, event_type: type[Event]) -> tuple[bytes, WritePlan]:
        plan = write_plan(self.registry, event_type)
        entry = (MAGIC + plan.version.fingerprint, plan)
        self._writers[event_type] = entry
        return entry

    def _reader(self, data: bytes) -> EventReader:
        if data[:2] != MAGIC:
            raise DecodeError(
                f"not an Avro single object: starts with {bytes(data[:2]).hex() or 'nothing'}, expected c301",
                raw=data,
            )
        if len(data) < _HEADER:
            raise DecodeError(f"truncated single-object header: {len(data)} bytes, need {_HEADER}", raw=data)
        fp = bytes(data[2:_HEADER])
        try:
            writer = self.registry.by_fingerprint(fp)
        except SchemaNotFoundError as exc:
            raise UnknownSchemaError(f"unknown writer schema: {exc}", raw=data) from exc
        source = f"fingerprint {fp.hex()}"
        read = event_reader(self.registry, writer.name, writer.schema, source, data, _HEADER)
        self._readers[MAGIC + fp] = read
        return read
