"""Deterministic sample events of any event type, for ``kep produce`` and ``kep demo``.

Values come from the model's Avro schema (``avro_schema``): a string is ``<field>-<number>``, a number is
drawn between 0 and 1000, an enum one of its symbols, an array or a map one to three items, an optional field
its value branch, ``occurred_at`` one millisecond after the previous event. A model may supply realistic
values instead, with a class method ``kep_sample(rng, number, at)`` returning one event: that is the way for
a hand-written model whose validation rules (a currency pattern, a positive quantity) the generic values
would not meet.

The same ``seed`` (and ``start``) always gives the same events, ids included.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import count, islice
from typing import Any

from pydantic import ValidationError

from kep.producers.errors import SampleError
from kep.schemas.events import Event
from kep.schemas.model_schema import avro_schema

__all__ = ["DEFAULT_START", "SampleError", "iter_sample_events", "sample_event", "sample_events"]

#: Where deterministic timestamps start when no ``start`` is given.
DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)
_PRIMITIVE = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


def sample_event(model: type[Event], rng: random.Random, number: int, at: datetime) -> Event:
    """One sample ``model`` event: ``model.kep_sample(rng, number, at)`` if defined, else from its schema."""
    custom = getattr(model, "kep_sample", None)
    if callable(custom):
        event: Event = custom(rng, number, at)
        return event
    schema = avro_schema(model)
    data = _Values(rng, number, at).record(schema, schema.get("namespace"))
    data["event_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    data["occurred_at"] = at
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise SampleError(
            f"generated values do not satisfy {model.avro_name} ({model.__module__}.{model.__qualname__}): "
            f"{where}: {first['msg']}; give the model a classmethod kep_sample(rng, number, at), or send "
            "JSON lines with --file"
        ) from None


def iter_sample_events(
    models: Sequence[type[Event]], seed: int = 0, start: datetime | None = None
) -> Iterator[Event]:
    """An endless, deterministic stream of sample events, one millisecond apart from ``start``, cycling
    through ``models`` in order."""
    if not models:
        raise ValueError("no event types to generate samples of")
    rng = random.Random(seed)
    base = start or DEFAULT_START
    for number in count():
        model = models[number % len(models)]
        yield sample_event(model, rng, number, base + timedelta(milliseconds=number))


def sample_events(
    models: Sequence[type[Event]], n: int, seed: int = 0, start: datetime | None = None
) -> list[Event]:
    """The first ``n`` events of ``iter_sample_events(models, seed, start)``."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return list(islice(iter_sample_events(models, seed, start), n))


class _Values:
    """Values for the parts of one schema (Avro JSON form), drawn from ``rng``."""

    def __init__(self, rng: random.Random, number: int, at: datetime) -> None:
        self.rng = rng
        self.number = number
        self.at = at
        self.named: dict[str, Any] = {}

    def record(self, schema: dict[str, Any], namespace: str | None) -> dict[str, Any]:
        own = schema.get("namespace", namespace)
        self.named[_full_name(schema["name"], own)] = schema
        return {field["name"]: self.value(field["type"], own, field["name"]) for field in schema["fields"]}

    def value(self, schema: Any, namespace: str | None, label: str) -> Any:
        if isinstance(schema, str):
            if schema in _PRIMITIVE:
                return self.primitive(schema, label)
            return self.value(self.named[_full_name(schema, namespace)], namespace, label)
        if isinstance(schema, list):
            branches = [branch for branch in schema if branch != "null"] or ["null"]
            return self.value(branches[0], namespace, label)
        kind = schema["type"]
        if schema.get("logicalType") == "timestamp-millis" and kind == "long":
            return self.at
        if kind in _PRIMITIVE:
            return self.primitive(kind, label)
        if kind == "enum":
            self.named[_full_name(schema["name"], schema.get("namespace", namespace))] = schema
            return self.rng.choice(schema["symbols"])
        if kind in ("record", "error"):
            return self.record(schema, namespace)
        if kind == "array":
            return [self.value(schema["items"], namespace, label) for _ in range(self.rng.randint(1, 3))]
        if kind == "map":
            size = self.rng.randint(1, 3)
            return {f"key-{i}": self.value(schema["values"], namespace, label) for i in range(size)}
        if kind == "fixed":
            return self.rng.randbytes(int(schema["size"]))
        return None

    def primitive(self, kind: str, label: str) -> Any:
        rng = self.rng
        if kind == "string":
            return f"{label}-{self.number}"
        if kind in ("int", "long"):
            return rng.randint(0, 1000)
        if kind in ("float", "double"):
            return round(rng.uniform(0, 1000), 2)
        if kind == "boolean":
            return rng.random() < 0.5
        if kind == "bytes":
            return rng.randbytes(8)
        return None


def _full_name(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"
