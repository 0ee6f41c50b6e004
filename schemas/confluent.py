"""``ConfluentCodec``: the Confluent Schema Registry wire format.

Layout: ``00`` (magic byte), the 4-byte big-endian schema id the registry assigned, then the Avro binary body.
Encoding registers the newest local version of the event's schema on first use (under the subject the subject
strategy gives; by default the record's full name) and caches the id. Decoding fetches the writer schema by id
once, and resolves it to the newest local version of the same name, like ``SingleObjectCodec``.

The registry client comes from ``confluent-kafka`` (``pip install 'kep-kafka[registry]'``). A ``mock://`` URL gives
its in-process mock registry; ``schema_registry_client`` hands out one client per URL, so every codec of a
process that names the same ``mock://`` URL shares its schemas.
"""

from __future__ import annotations

import contextlib
import json
import threading
import warnings
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from fastavro import parse_schema

from kep.schemas._plans import Encoder, EventReader, WritePlan, event_encoder, event_reader, write_plan
from kep.schemas.errors import (
    DecodeError,
    IncompatibleSchemaError,
    InvalidSchemaError,
    SchemaError,
    UnknownSchemaError,
)
from kep.schemas.events import Event
from kep.schemas.registry import LocalSchemaRegistry

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

__all__ = ["ConfluentCodec", "SubjectStrategy", "record_name_subject", "schema_registry_client"]

SubjectStrategy = Callable[[type[Event]], str]
_HEADER = 5
_clients: dict[str, SchemaRegistryClient] = {}
_clients_lock = threading.Lock()


def record_name_subject(event_type: type[Event]) -> str:
    """Topic-less record name strategy: the subject is the record's full name (``kep.orders.OrderPlaced``)."""
    return event_type.avro_name


def _schema_registry_module() -> ModuleType:
    with warnings.catch_warnings():
        # authlib, imported by the registry client, warns about its own httpx dependency on import. Its
        # ``authlib.deprecate`` installs an "always" filter for that warning when first imported, so import it
        # first and put our filter in front of it.
        with contextlib.suppress(ImportError):
            import authlib.deprecate  # noqa: F401
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"authlib(\.|$)")
        import confluent_kafka.schema_registry as module
    return module


def schema_registry_client(url: str, config: Mapping[str, Any] | None = None) -> SchemaRegistryClient:
    """A registry client for ``url`` (``mock://...``: the in-process mock); one per URL unless ``config``."""
    module = _schema_registry_module()
    if config:
        client: SchemaRegistryClient = module.SchemaRegistryClient.new_client({**config, "url": url})
        return client
    with _clients_lock:
        if url not in _clients:
            _clients[url] = module.SchemaRegistryClient.new_client({"url": url})
        return _clients[url]


class ConfluentCodec:
    """Encode and decode events in Confluent framing through ``client``; reader schemas from ``registry``."""

    def __init__(
        self,
        client: SchemaRegistryClient,
        registry: LocalSchemaRegistry | None = None,
        subject_strategy: SubjectStrategy = record_name_subject,
    ) -> None:
        self.client = client
        self.registry = registry if registry is not None else LocalSchemaRegistry.default()
        self.subject_strategy = subject_strategy
        self._writers: dict[type[Event], tuple[bytes, WritePlan]] = {}
        self._encoders: dict[type[Event], Encoder] = {}
        self._readers: dict[bytes, EventReader] = {}  # by the whole header: magic byte and schema id

    def __repr__(self) -> str:
        return f"ConfluentCodec({self.registry!r})"

    def encode(self, event: Event) -> bytes:
        """``00`` + schema id + Avro body; the schema is registered on the first event of its type."""
        encode = self._encoders.get(type(event))
        if encode is None:
            encode = self.encoder(type(event))
        return encode(event)

    def encoder(self, event_type: type[Event]) -> Encoder:
        """``encode`` for events of exactly ``event_type`` (registering its schema if needed), without the
        lookup: producers cache it per type."""
        encode = self._encoders.get(event_type)
        if encode is None:
            header, plan = self._writers.get(event_type) or self._register(event_type)
            encode = self._encoders[event_type] = event_encoder(header, plan)
        return encode

    def decode(self, data: bytes) -> Event:
        """The event in ``data``. ``DecodeError``/``UnknownSchemaError`` keep the bytes in ``raw``."""
        read = self._readers.get(data[:_HEADER])
        if read is None:
            read = self._reader(data)
        return read(data)

    def schema_ref(self, event_type: type[Event]) -> str:
        """``sr:<id>``: the registry id ``encode`` writes ``event_type`` with (registering it if needed)."""
        header, _ = self._writers.get(event_type) or self._register(event_type)
        return f"sr:{int.from_bytes(header[1:], 'big')}"

    def _register(self, event_type: type[Event]) -> tuple[bytes, WritePlan]:
        plan = write_plan(self.registry, event_type)
        subject = self.subject_strategy(event_type)
        module = _schema_registry_module()
        schema = module.Schema(json.dumps(plan.version.schema, separators=(",", ":")), "AVRO")
        try:
            schema_id = self.client.register_schema(subject, schema)
        except Exception as exc:  # SchemaRegistryError, or the HTTP client's own errors
            what = f"{plan.version.name} v{plan.version.version}"
            message = f"cannot register {what} under subject {subject!r}: {exc}"
            if getattr(exc, "http_status_code", None) == 409:  # the registry's own compatibility check
                raise IncompatibleSchemaError(message) from exc
            raise SchemaError(message) from exc
        entry = (b"\x00" + int(schema_id).to_bytes(4, "big"), plan)
        self._writers[event_type] = entry
        return entry

    def _reader(self, data: bytes) -> EventReader:
        if data[:1] != b"\x00":
            first = bytes(data[:1]).hex() or "nothing"
            raise DecodeError(f"not Confluent-framed Avro: magic byte is {first}, expected 00", raw=data)
        if len(data) < _HEADER:
            raise DecodeError(f"truncated Confluent header: {len(data)} bytes, need {_HEADER}", raw=data)
        key = bytes(data[1:_HEADER])
        schema_id = int.from_bytes(key, "big")
        try:
            registered = self.client.get_schema(schema_id)
        except Exception as exc:  # SchemaRegistryError, or the HTTP client's own errors
            if getattr(exc, "http_status_code", None) == 404:
                message = f"schema id {schema_id} is not in the registry: {exc}"
                raise UnknownSchemaError(message, raw=data) from exc
            # not the message's fault: callers should retry rather than dead-letter
            raise SchemaError(f"schema registry lookup of id {schema_id} failed: {exc}") from exc
        try:
            writer = json.loads(registered.schema_str or "")
            name = str(parse_schema(writer, named_schemas={})["name"])  # type: ignore[call-overload,index]
        except Exception as exc:
            message = f"schema id {schema_id} from the registry does not parse: {exc}"
            raise InvalidSchemaError(message) from exc
        read = event_reader(self.registry, name, writer, f"schema id {schema_id}", data, _HEADER)
        self._readers[b"\x00" + key] = read
        return read
