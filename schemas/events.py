"""``Event``: the pydantic base of every kep event, and the table of known event types.

An event is a frozen pydantic model whose fields mirror its Avro record one to one (``schemas/avro`` holds
the ``.avsc`` files; ``schemas.model_schema.avro_schema`` derives the schema a model implies, and a test keeps
the two equal). Every event carries ``event_id`` (a UUID string, the idempotency key) and ``occurred_at``
(UTC, stored as Avro ``timestamp-millis``, so it is cut to whole milliseconds on construction).

Concrete events set two class variables::

    class OrderPlaced(Event):
        avro_name: ClassVar[str] = "kep.orders.OrderPlaced"
        key_field: ClassVar[str | None] = "order_id"

Defining such a class registers it: ``event_types()`` maps Avro full names to model classes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kep.schemas.errors import SchemaError, SchemaNotFoundError

__all__ = ["AvroRecord", "Event", "event_type_for", "event_types"]

_EVENT_TYPES: dict[str, type[Event]] = {}


def _new_event_id() -> str:
    return str(uuid.uuid4())


def _now_millis() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class AvroRecord(BaseModel):
    """A frozen model that maps to an Avro record: the base of events and of their nested records.

    A nested record's Avro name is the class name, in the namespace of the event that contains it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")


class Event(AvroRecord):
    """Base of every event. Subclasses set ``avro_name`` (Avro full name) and ``key_field`` (Kafka key)."""

    avro_name: ClassVar[str]
    key_field: ClassVar[str | None] = None

    event_id: str = Field(
        default_factory=_new_event_id,
        min_length=1,
        description="Unique id of this event (a UUID); the idempotency key.",
    )
    occurred_at: datetime = Field(
        default_factory=_now_millis,
        description="When the event happened, UTC, milliseconds since the Unix epoch.",
    )

    @field_validator("occurred_at")
    @classmethod
    def _utc_millis(cls, value: datetime) -> datetime:
        """Naive datetimes are taken as UTC; precision is cut to the millisecond Avro keeps."""
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        name = cls.__dict__.get("avro_name")
        if name is None:
            return  # an intermediate base, not a concrete event
        key_field = cls.key_field
        if key_field is not None and key_field not in cls.model_fields:
            raise SchemaError(f"{cls.__qualname__}: key_field {key_field!r} is not a field of the model")
        known = _EVENT_TYPES.get(name)
        if known is not None and _qualified(known) != _qualified(cls):
            both = f"{_qualified(known)} and {_qualified(cls)}"
            raise SchemaError(f"event type {name} is defined twice: {both}")
        _EVENT_TYPES[name] = cls

    def idempotency_key(self) -> str:
        """The key consumers deduplicate on: the event id."""
        return self.event_id

    def kafka_key(self) -> str | None:
        """The value of ``key_field`` as a string (the Kafka record key), or None when the type has no key."""
        if self.key_field is None:
            return None
        value = getattr(self, self.key_field)
        return None if value is None else str(value)


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _load_shipped_events() -> None:
    import kep.schemas.batches  # noqa: F401  (defining the models registers them)
    import kep.schemas.orders  # noqa: F401


def event_types() -> dict[str, type[Event]]:
    """Avro full name -> event model, for every event defined so far (the shipped ones always included)."""
    _load_shipped_events()
    return dict(_EVENT_TYPES)


def event_type_for(name: str) -> type[Event]:
    """The event model for an Avro full name; ``SchemaNotFoundError`` names what is known otherwise."""
    _load_shipped_events()
    try:
        return _EVENT_TYPES[name]
    except KeyError:
        known = ", ".join(sorted(_EVENT_TYPES)) or "none"
        raise SchemaNotFoundError(f"no event type named {name!r} (known: {known})") from None
