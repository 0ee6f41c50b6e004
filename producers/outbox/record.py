"""An event as the outbox keeps it: the record ``EventProducer.publish`` would send, encoded once, up front.

The relay sends these bytes unchanged, so it needs no schemas, topology or codec of its own, and a record is
the same whether it was written by a handler (``ctx.publish``) or by service code (``Outbox(conn)``).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from kep.producers import _routing
from kep.producers import headers as h
from kep.producers.errors import InvalidTraceparentError
from kep.producers.producer import HeadersArg, _caller_headers, _checked_key
from kep.producers.traceparent import validate_traceparent

if TYPE_CHECKING:
    from kep.schemas.codec import EventCodec
    from kep.schemas.events import Event
    from kep.topology.model import Topology

Header = tuple[str, bytes | None]


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """One record to publish: where, its key, its encoded value, its headers, and the event's id."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[Header, ...]
    event_id: str

    def headers_json(self) -> str:
        """The headers as the outbox table stores them: JSON pairs, values in base64 (or null)."""
        pairs = [
            [name, None if v is None else base64.b64encode(v).decode("ascii")] for name, v in self.headers
        ]
        return orjson.dumps(pairs).decode("ascii")


def headers_from_json(text: str | bytes) -> list[Header]:
    """The headers of a stored row (see ``OutboxRecord.headers_json``)."""
    return [(str(name), None if v is None else base64.b64decode(v)) for name, v in orjson.loads(text)]


class RecordEncoder:
    """Turns events into ``OutboxRecord`` for the topics of a topology (routes cached per event type).

    Topic, key and the ``kep-event-type``, ``kep-schema`` and ``kep-idempotency-key`` headers are chosen
    exactly as ``EventProducer.publish`` chooses them; ``causation_id`` adds ``kep-causation-id`` and
    ``traceparent`` the W3C trace context.
    """

    def __init__(self, topology: Topology, codec: EventCodec | None = None) -> None:
        if codec is None:
            from kep.schemas.codec import codec_for
            from kep.topology.loader import schema_registry

            codec = codec_for(registry=schema_registry(topology))
        self.topology = topology
        self._codec = codec
        self._routes: dict[tuple[type[Event], str | None], _routing.Route] = {}

    def encode(
        self,
        event: Event,
        *,
        topic: str | None = None,
        key: str | bytes | None = None,
        headers: HeadersArg | None = None,
        traceparent: str | None = None,
        causation_id: str | None = None,
    ) -> OutboxRecord:
        """The record for ``event``; raises what ``EventProducer.publish`` raises for the same arguments."""
        route = self._routes.get((event.__class__, topic))
        if route is None:
            route = _routing.resolve(self.topology, self._codec, event.__class__, topic)
            self._routes[(event.__class__, topic)] = route
        if key is None:
            key = _checked_key(event, route, route.key_of(event))
        event_id = str(route.idempotency_key(event))
        pairs: list[Header] = [
            route.event_type_header,
            route.schema_header,
            (h.IDEMPOTENCY_KEY, event_id.encode()),
        ]
        if traceparent is not None:
            pairs.append((h.TRACEPARENT, validate_traceparent(traceparent).encode()))
        if causation_id is not None:
            pairs.append((h.CAUSATION_ID, causation_id.encode("utf-8", "surrogateescape")))
        if headers:
            pairs.extend((name, _bytes(value)) for name, value in _caller_headers(headers))
        key_bytes = key.encode() if isinstance(key, str) else key
        return OutboxRecord(route.topic, key_bytes, route.encode(event), tuple(pairs), event_id)


def usable_traceparent(value: str | None) -> str | None:
    """``value`` when it is well-formed trace context, else None (a handled message's header is untrusted)."""
    if value is None:
        return None
    try:
        return validate_traceparent(value)
    except InvalidTraceparentError:
        return None


def _bytes(value: h.HeaderValue) -> bytes | None:
    return value.encode() if isinstance(value, str) else value
