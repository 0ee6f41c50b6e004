"""``EventCodec``: how events become record values and back, whatever the wire format.

Two implementations: ``SingleObjectCodec`` (Avro single-object encoding against the local schemas; the
default, no server needed) and ``ConfluentCodec`` (Confluent framing through a Schema Registry).
``codec_for`` picks one.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from kep.schemas.events import Event
from kep.schemas.registry import LocalSchemaRegistry

__all__ = ["EventCodec", "codec_for"]


@runtime_checkable
class EventCodec(Protocol):
    """Encode events to bytes and back. Decoding errors are ``DecodeError`` and keep the bytes in ``raw``.

    A codec may also offer ``encoder(event_type) -> Callable[[Event], bytes]``, ``encode`` for one event type
    without the per-call lookup; both shipped codecs do, and ``EventProducer`` uses it when it is there.
    """

    def encode(self, event: Event) -> bytes:
        """The record value for ``event``."""
        ...

    def decode(self, data: bytes) -> Event:
        """The event in a record value, as the newest local model of its type."""
        ...

    def schema_ref(self, event_type: type[Event]) -> str:
        """The ``kep-schema`` header value for ``event_type``: ``sof:<16 hex>`` or ``sr:<id>``."""
        ...


def codec_for(registry_url: str | None = None, registry: LocalSchemaRegistry | None = None) -> EventCodec:
    """Single-object encoding when ``registry_url`` is None, else Confluent framing through that registry.

    ``registry`` holds the local schemas (default: ``LocalSchemaRegistry.default()``, the paths in
    ``KEP_SCHEMAS``; commands and workers pass the topology's, ``kep.topology.schema_registry``). A
    ``mock://`` URL uses the in-process mock registry of confluent-kafka, shared by every codec of the
    process that names the same URL.
    """
    if registry_url is None:
        from kep.schemas.single_object import SingleObjectCodec

        return SingleObjectCodec(registry)
    from kep.schemas.confluent import ConfluentCodec, schema_registry_client

    return ConfluentCodec(schema_registry_client(registry_url), registry)
