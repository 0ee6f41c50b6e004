"""``ConfluentCodec``: the Confluent Schema Registry wire format.

Layout: ``00`` (magic byte), the 4-byte big-endian schema id the registry assigned, then the Avro binary body.
Encoding finds the id of the newest local version of the event's schema under the subject the subject strategy
gives (the record's full name by default; ``<topic>-value`` with ``topic_name_subject``, Confluent's default),
registering it on first use unless ``auto_register`` is off (then it only looks the id up), and caches it.
Decoding fetches the writer schema by id once, and resolves it to the newest local version of the same name,
like ``SingleObjectCodec``.

Failures are told apart: an id the registry does not have is an ``UnknownSchemaError`` (the data's problem:
dead-letter it; the id is not asked for again for ``unknown_id_ttl_s``); a registry that does not answer, times
out, fails (5xx) or refuses the credentials is a ``SchemaRegistryUnavailableError`` (not the data's fault: wait
and retry).

The registry client comes from ``confluent-kafka`` (``pip install 'kep-kafka[registry]'``). A ``mock://`` URL gives
its in-process mock registry; ``schema_registry_client`` hands out one client per URL, so every codec of a
process that names the same ``mock://`` URL shares its schemas.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from fastavro import parse_schema
from pydantic import ValidationError
from pydantic_settings import SettingsError

from kep.schemas._plans import Encoder, EventReader, WritePlan, event_encoder, event_reader, write_plan
from kep.schemas.errors import (
    DecodeError,
    IncompatibleSchemaError,
    InvalidSchemaError,
    SchemaError,
    SchemaNotRegisteredError,
    SchemaRegistryUnavailableError,
    UnknownSchemaError,
)
from kep.schemas.events import Event
from kep.schemas.registry import LocalSchemaRegistry
from kep.schemas.settings import SchemaRegistrySettings, settings_problems

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

__all__ = [
    "SUBJECT_STRATEGIES",
    "ConfluentCodec",
    "SubjectStrategy",
    "record_name_subject",
    "schema_registry_client",
    "topic_name_subject",
    "topic_record_name_subject",
]

#: ``(event type, topic or None) -> subject``.
SubjectStrategy = Callable[[type[Event], str | None], str]
_HEADER = 5
_MAX_UNKNOWN_IDS = 10_000
_clients: dict[str, SchemaRegistryClient] = {}
_clients_lock = threading.Lock()


def record_name_subject(event_type: type[Event], topic: str | None = None) -> str:
    """Record name strategy: the subject is the record's full name (``kep.orders.OrderPlaced``), whatever the
    topic. kep's default: one topic may carry several event types."""
    return event_type.avro_name


def topic_name_subject(event_type: type[Event], topic: str | None = None) -> str:
    """Topic name strategy, Confluent's default: ``<topic>-value``. Every event type of a topic shares the
    subject, so the registry's compatibility rules apply between them: use it for one event type per topic."""
    return f"{_topic(event_type, topic, 'topic name')}-value"


def topic_record_name_subject(event_type: type[Event], topic: str | None = None) -> str:
    """Topic record name strategy: ``<topic>-<record full name>``."""
    return f"{_topic(event_type, topic, 'topic record name')}-{event_type.avro_name}"


SUBJECT_STRATEGIES: Mapping[str, SubjectStrategy] = {
    "record_name": record_name_subject,
    "topic_name": topic_name_subject,
    "topic_record_name": topic_record_name_subject,
}


def _topic(event_type: type[Event], topic: str | None, strategy: str) -> str:
    if not topic:
        raise SchemaError(
            f"the {strategy} subject strategy needs the topic {event_type.avro_name} is written to; "
            "encode through a producer, or pass topic="
        )
    return topic


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
    """A registry client for ``url`` (``mock://...``: the in-process mock, one per URL whatever ``config``);
    one per URL unless ``config`` (``SchemaRegistrySettings.client_config``) is given."""
    module = _schema_registry_module()
    if config and not url.startswith("mock://"):
        try:
            client: SchemaRegistryClient = module.SchemaRegistryClient.new_client({**config, "url": url})
        except (ValueError, TypeError) as exc:
            raise SchemaError(f"schema registry {safe_url(url)}: invalid client settings: {exc}") from None
        return client
    with _clients_lock:
        if url not in _clients:
            _clients[url] = module.SchemaRegistryClient.new_client({"url": url})
        return _clients[url]


def safe_url(url: str) -> str:
    """``url`` (or a comma-separated list) without the user and password it may embed."""
    shown = []
    for one in url.split(","):
        parts = urlsplit(one.strip())
        if parts.username is not None or parts.password is not None:
            host = parts.hostname or ""
            netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
            one = urlunsplit(parts._replace(netloc=netloc))
        shown.append(one.strip())
    return ",".join(shown)


_Failure = Literal["not_found", "incompatible", "refused", "unavailable", "other"]


def _failure(exc: BaseException) -> _Failure:
    """What a registry call's exception means for the caller."""
    status = getattr(exc, "http_status_code", None)
    if isinstance(status, int):
        if status == 404:
            return "not_found"
        if status == 409:
            return "incompatible"
        if status in (401, 403):
            return "refused"
        if status in (408, 429) or status >= 500:
            return "unavailable"
        return "other"
    if isinstance(exc, (OSError, TimeoutError)) or type(exc).__module__.startswith(("httpx", "httpcore")):
        return "unavailable"  # connection refused, reset, timed out, name not resolved...
    return "other"


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if type(exc).__module__.startswith(("httpx", "httpcore")):
        text = f"{type(exc).__name__}: {text}"
    return text


class ConfluentCodec:
    """Encode and decode events in Confluent framing through ``client``; reader schemas from ``registry``.

    ``auto_register=False`` never registers: the id of the schema under its subject is looked up, and a schema
    that is not there is a ``SchemaNotRegisteredError`` naming the subject. ``url`` only names the registry in
    error messages (without credentials).
    """

    def __init__(
        self,
        client: SchemaRegistryClient,
        registry: LocalSchemaRegistry | None = None,
        subject_strategy: SubjectStrategy = record_name_subject,
        *,
        auto_register: bool = True,
        unknown_id_ttl_s: float = 60.0,
        url: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.registry = registry if registry is not None else LocalSchemaRegistry.default()
        self.subject_strategy = subject_strategy
        self.auto_register = auto_register
        self.unknown_id_ttl_s = unknown_id_ttl_s
        self._where = f" at {safe_url(url)}" if url else ""
        self._clock = clock
        self._writers: dict[tuple[type[Event], str], tuple[bytes, WritePlan]] = {}  # by type and subject
        self._encoders: dict[tuple[type[Event], str | None], Encoder] = {}  # by type and topic
        self._readers: dict[bytes, EventReader] = {}  # by the whole header: magic byte and schema id
        self._unknown: dict[int, tuple[float, str]] = {}  # schema id -> (not asked again before, why)
        self._owns_client = False

    @classmethod
    def from_settings(
        cls,
        url: str,
        settings: SchemaRegistrySettings | None = None,
        registry: LocalSchemaRegistry | None = None,
    ) -> ConfluentCodec:
        """A codec for the registry at ``url`` with ``settings`` (default: ``KEP_SCHEMA_REGISTRY_*``)."""
        if settings is None:
            try:
                settings = SchemaRegistrySettings()
            except (ValidationError, SettingsError) as exc:
                problems = settings_problems(exc, "KEP_SCHEMA_REGISTRY_")
                raise SchemaError(f"invalid schema registry settings: {problems}") from None
        codec = cls(
            schema_registry_client(url, settings.client_config(url)),
            registry,
            SUBJECT_STRATEGIES[settings.subject_strategy],
            auto_register=settings.auto_register,
            unknown_id_ttl_s=settings.unknown_id_ttl_s,
            url=url,
        )
        codec._owns_client = not url.startswith("mock://")  # mock clients are shared per URL
        return codec

    def __repr__(self) -> str:
        return f"ConfluentCodec({self.registry!r})"

    def close(self) -> None:
        """Close the HTTP connections of the client ``from_settings`` made; a client given to the codec stays
        open (its owner closes it)."""
        if self._owns_client:
            self.client.close()

    def encode(self, event: Event, topic: str | None = None) -> bytes:
        """``00`` + schema id + Avro body; the id is found (or the schema registered) on the first event of its
        type and subject. ``topic`` matters to the topic strategies only."""
        encode = self._encoders.get((type(event), topic))
        if encode is None:
            encode = self.encoder(type(event), topic)
        return encode(event)

    def encoder(self, event_type: type[Event], topic: str | None = None) -> Encoder:
        """``encode`` for events of exactly ``event_type`` written to ``topic`` (finding the schema id if needed),
        without the lookup: producers cache it per type and topic."""
        key = (event_type, topic)
        encode = self._encoders.get(key)
        if encode is None:
            header, plan = self._writer(event_type, topic)
            encode = self._encoders[key] = event_encoder(header, plan)
        return encode

    def decode(self, data: bytes) -> Event:
        """The event in ``data``. ``DecodeError``/``UnknownSchemaError`` keep the bytes in ``raw``;
        ``SchemaRegistryUnavailableError`` when the registry could not be asked (retry, the data may be fine)."""
        read = self._readers.get(data[:_HEADER])
        if read is None:
            read = self._reader(data)
        return read(data)

    def schema_ref(self, event_type: type[Event], topic: str | None = None) -> str:
        """``sr:<id>``: the registry id ``encode`` writes ``event_type`` to ``topic`` with."""
        header, _ = self._writer(event_type, topic)
        return f"sr:{int.from_bytes(header[1:], 'big')}"

    def _writer(self, event_type: type[Event], topic: str | None) -> tuple[bytes, WritePlan]:
        subject = self.subject_strategy(event_type, topic)
        entry = self._writers.get((event_type, subject))
        if entry is None:
            entry = self._writers[(event_type, subject)] = self._schema_id(event_type, subject)
        return entry

    def _schema_id(self, event_type: type[Event], subject: str) -> tuple[bytes, WritePlan]:
        plan = write_plan(self.registry, event_type)
        module = _schema_registry_module()
        schema = module.Schema(json.dumps(plan.version.schema, separators=(",", ":")), "AVRO")
        what = f"{plan.version.name} v{plan.version.version}"
        try:
            if self.auto_register:
                schema_id: int | None = self.client.register_schema(subject, schema)
            else:
                schema_id = self.client.lookup_schema(subject, schema).schema_id
        except Exception as exc:  # SchemaRegistryError, or the HTTP client's own errors
            raise self._write_error(exc, what, subject) from exc
        if schema_id is None:
            raise SchemaError(
                f"the schema registry{self._where} gave no id for {what} under subject {subject!r}"
            )
        return b"\x00" + int(schema_id).to_bytes(4, "big"), plan

    def _write_error(self, exc: Exception, what: str, subject: str) -> SchemaError:
        failure = _failure(exc)
        reason = _describe(exc)
        if not self.auto_register:
            message = f"cannot look up {what} under subject {subject!r} in the schema registry{self._where}"
            if failure == "not_found":
                return SchemaNotRegisteredError(
                    f"{what} is not registered under subject {subject!r} in the schema registry{self._where}, "
                    f"and auto-registration is off (KEP_SCHEMA_REGISTRY_AUTO_REGISTER=false): register it "
                    f"first ({reason})"
                )
        else:
            message = f"cannot register {what} under subject {subject!r} in the schema registry{self._where}"
            if failure == "incompatible":  # the registry's own compatibility check
                return IncompatibleSchemaError(f"{message}: {reason}")
            status = getattr(exc, "http_status_code", None)
            if status == 403 or getattr(exc, "error_code", None) == 42205:  # denied writes, read-only mode
                hint = "; a locked registry: set KEP_SCHEMA_REGISTRY_AUTO_REGISTER=false to only look up ids"
                return SchemaRegistryUnavailableError(f"{message}: {reason}{hint}")
        if failure == "refused":
            return SchemaRegistryUnavailableError(
                f"{message}: the registry refused the credentials: {reason}"
            )
        if failure == "unavailable":
            return SchemaRegistryUnavailableError(f"{message}: {reason}")
        return SchemaError(f"{message}: {reason}")

    def _reader(self, data: bytes) -> EventReader:
        if data[:1] != b"\x00":
            first = bytes(data[:1]).hex() or "nothing"
            raise DecodeError(f"not Confluent-framed Avro: magic byte is {first}, expected 00", raw=data)
        if len(data) < _HEADER:
            raise DecodeError(f"truncated Confluent header: {len(data)} bytes, need {_HEADER}", raw=data)
        key = bytes(data[1:_HEADER])
        schema_id = int.from_bytes(key, "big")
        unknown = self._unknown.get(schema_id)
        if unknown is not None and self._clock() < unknown[0]:
            raise UnknownSchemaError(unknown[1], raw=data)  # asked a moment ago: do not hammer the registry
        try:
            registered = self.client.get_schema(schema_id)
        except Exception as exc:  # SchemaRegistryError, or the HTTP client's own errors
            reason = _describe(exc)
            if _failure(exc) == "not_found":
                message = f"schema id {schema_id} is not in the registry{self._where}: {reason}"
                if self.unknown_id_ttl_s > 0:
                    if len(self._unknown) >= _MAX_UNKNOWN_IDS:
                        self._unknown.clear()
                    self._unknown[schema_id] = (self._clock() + self.unknown_id_ttl_s, message)
                raise UnknownSchemaError(message, raw=data) from exc
            # not the message's fault: callers wait and retry rather than dead-letter
            raise SchemaRegistryUnavailableError(
                f"schema registry lookup of id {schema_id} failed{self._where}: {reason}"
            ) from exc
        self._unknown.pop(schema_id, None)
        try:
            writer = json.loads(registered.schema_str or "")
            name = str(parse_schema(writer, named_schemas={})["name"])  # type: ignore[call-overload,index]
        except Exception as exc:
            message = f"schema id {schema_id} from the registry does not parse: {exc}"
            raise InvalidSchemaError(message) from exc
        read = event_reader(self.registry, name, writer, f"schema id {schema_id}", data, _HEADER)
        self._readers[b"\x00" + key] = read
        return read
