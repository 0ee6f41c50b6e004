"""Which topic, key and fixed headers an event type gets: computed once per (event type, topic) and cached.

With the route ``publish`` reads the key, the idempotency key and the encoding of an event through
ready-made accessors, so its hot path makes no decision that depends only on the event type.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING

from kep.producers import headers as h
from kep.producers.errors import AmbiguousTopicError, RoutingError, UnknownTopicError, WrongEventTypeError
from kep.schemas.events import Event
from kep.topology.errors import TopologyError

if TYPE_CHECKING:
    from kep.schemas.codec import EventCodec
    from kep.topology.model import TopicSpec, Topology


@dataclass(frozen=True, slots=True)
class Route:
    """Everything ``publish`` needs about an event type on a topic, except the event itself."""

    topic: str
    key_attr: str | None
    key_of: Callable[[Event], object]
    event_type_header: tuple[str, bytes]
    schema_header: tuple[str, bytes]
    #: ``event.idempotency_key()``; the ``event_id`` getter (a C call) unless the model overrides the method.
    idempotency_key: Callable[[Event], str]
    #: The codec's encoder for this event type (``codec.encode`` when the codec has no per-type encoder).
    encode: Callable[[Event], bytes]


def value_schemas(spec: TopicSpec) -> list[str]:
    """The event types (Avro full names) a topic carries."""
    return list(spec.value_schema)


def _topic_spec(topology: Topology, topic: str) -> TopicSpec:
    try:
        return topology.topic(topic)
    except TopologyError as exc:
        raise UnknownTopicError(topic, [t.name for t in topology.topics]) from exc


def resolve(topology: Topology, codec: EventCodec, event_type: type[Event], topic: str | None) -> Route:
    """The route of ``event_type`` to ``topic`` (or to the one topic carrying it), or a ``RoutingError``."""
    avro_name = event_type.avro_name
    if topic is None:
        candidates: Sequence[TopicSpec] = topology.topics_for_event(avro_name)
        if len(candidates) != 1:
            raise AmbiguousTopicError(avro_name, [c.name for c in candidates])
        spec = candidates[0]
    else:
        spec = _topic_spec(topology, topic)
        allowed = value_schemas(spec)
        if avro_name not in allowed:
            raise WrongEventTypeError(spec.name, avro_name, allowed)
    key_attr = getattr(event_type, "key_field", None) or spec.key_field
    if key_attr is not None and key_attr not in event_type.model_fields:
        raise RoutingError(
            f"topic {spec.name!r} keys records by {key_attr!r}, which is not a field of {avro_name}"
        )
    return Route(
        topic=spec.name,
        key_attr=key_attr,
        key_of=attrgetter(key_attr) if key_attr else _no_key,
        event_type_header=(h.EVENT_TYPE, avro_name.encode()),
        schema_header=(h.SCHEMA, codec.schema_ref(event_type, spec.name).encode()),
        idempotency_key=_idempotency_key_of(event_type),
        encode=_encoder(codec, event_type, spec.name),
    )


def _idempotency_key_of(event_type: type[Event]) -> Callable[[Event], str]:
    if event_type.idempotency_key is Event.idempotency_key:
        getter: Callable[[Event], str] = attrgetter("event_id")
        return getter
    return event_type.idempotency_key


def _encoder(codec: EventCodec, event_type: type[Event], topic: str) -> Callable[[Event], bytes]:
    """``codec.encoder(event_type, topic)`` when the codec has one (the shipped codecs do), else
    ``codec.encode`` for ``topic``."""
    encoder: Callable[[type[Event], str], Callable[[Event], bytes]] | None = getattr(codec, "encoder", None)
    if encoder is None:
        return lambda event: codec.encode(event, topic)
    return encoder(event_type, topic)


def _no_key(event: Event) -> None:
    return None
