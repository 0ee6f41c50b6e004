"""``EventCodec``: how events become record values and back, whatever the wire format.

Two implementations: ``SingleObjectCodec`` (Avro single-object encoding against the local schemas; the
default, no server needed) and ``ConfluentCodec`` (Confluent framing through a Schema Registry).
``codec_for`` picks one.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from kep.schemas.events import Event
from kep.schemas.registry import LocalSchemaRegistry
from kep.schemas.settings import SchemaRegistrySettings

__all__ = ["EventCodec", "codec_for"]


@runtime_checkable
class EventCodec(Protocol):
    """Encode events to bytes and back. Decoding errors are ``DecodeError`` and keep the bytes in ``raw``.

    ``topic`` is the topic the record goes to: a codec may depend on it (Confluent's topic subject strategies)
    or ignore it. A codec may also offer ``encoder(event_type, topic=None) -> Callable[[Event], bytes]``,
    ``encode`` for one event type without the per-call lookup; both shipped codecs do, and ``EventProducer``
    uses it when it is there.
    """

    def encode(self, event: Event, topic: str | None = None) -> bytes:
        """The record value for ``event`` written to ``topic``."""
        ...

    def decode(self, data: bytes) -> Event:
        """The event in a record value, as the newest local model of its type."""
        ...

    def schema_ref(self, event_type: type[Event], topic: str | None = None) -> str:
        """The ``kep-schema`` header value for ``event_type`` on ``topic``: ``sof:<16 hex>`` or ``sr:<id>``."""
        ...


def codec_for(
    registry_url: str | None = None,
    registry: LocalSchemaRegistry | None = None,
    settings: SchemaRegistrySettings | None = None,
) -> EventCodec:
    """Single-object encoding when ``registry_url`` is None, else Confluent framing through that registry.

    ``registry`` holds the local schemas (default: ``LocalSchemaRegistry.default()``, the paths in
    ``KEP_SCHEMAS``; commands and workers pass the topology's, ``kep.topology.schema_registry``); ``settings``
    how to talk to the schema registry (subject strategy, auto-registration, credentials; default:
    ``KEP_SCHEMA_REGISTRY_*``). A ``mock://`` URL uses the in-process mock registry of confluent-kafka, shared by
    every codec of the process that names the same URL.
    """
    if registry_url is None:
        from kep.schemas.single_object import SingleObjectCodec

        return SingleObjectCodec(registry)
    from kep.schemas.confluent import ConfluentCodec

    return ConfluentCodec.from_settings(registry_url, settings, registry)
