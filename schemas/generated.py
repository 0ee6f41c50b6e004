"""Event models built from ``.avsc`` schemas at load time, so a service needs no hand-written class.

``model_from_schema(schema)`` returns a frozen ``Event`` subclass whose fields mirror the record one to one,
typed as ``schemas.model_schema`` maps them (``string`` -> ``str``, ``int`` -> ``Int32``, ``long`` with
``timestamp-millis`` -> ``datetime``, enums -> ``StrEnum`` classes, nested records -> ``AvroRecord``
classes, ``["null", X]`` -> ``X | None``...). Avro defaults become field defaults and docs become
descriptions. The same schema always gives the same class (cached by its exact JSON), and the class keeps
the schema it came from: ``avro_schema(model)`` returns it unchanged, so the model and its ``.avsc`` cannot
drift.

A kep event carries ``event_id`` (``string``, the idempotency key) and ``occurred_at`` (``long`` with
``logicalType: timestamp-millis``); a schema without them, or using what kep's models cannot hold (``fixed``,
other logical types, a field named like a pydantic attribute, recursive records), raises ``SchemaError``
naming the schema and the field. Generated classes are not entered in ``event_types()``: a hand-written model
of the same name, when one is defined, is what ``LocalSchemaRegistry.model`` returns instead.
"""

from __future__ import annotations

import copy
import json
import keyword
import threading
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from kep.schemas.errors import SchemaError
from kep.schemas.events import SOURCE_SCHEMA_ATTR, AvroRecord, Event
from kep.schemas.model_schema import Float32, Int32

__all__ = ["GENERATED_MODULE", "is_generated", "model_from_schema"]

#: The ``__module__`` of every generated class.
GENERATED_MODULE = "kep.schemas.generated"
_SCHEMA_ATTR = SOURCE_SCHEMA_ATTR
_PRIMITIVES: dict[str, Any] = {
    "null": type(None),
    "boolean": bool,
    "int": Int32,
    "long": int,
    "float": Float32,
    "double": float,
    "bytes": bytes,
    "string": str,
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RESERVED = frozenset(dir(BaseModel)) | {"avro_name", "key_field", "idempotency_key", "kafka_key"}
_cache: dict[str, type[Event]] = {}
_lock = threading.Lock()


def is_generated(model: type) -> bool:
    """True for a class ``model_from_schema`` made (an event or one of its nested records)."""
    return _SCHEMA_ATTR in model.__dict__


def source_schema(model: type) -> dict[str, Any] | None:
    """The schema a generated class was made from (a deep copy), or None for any other class."""
    schema = model.__dict__.get(_SCHEMA_ATTR)
    return copy.deepcopy(schema) if schema is not None else None


def model_from_schema(schema: dict[str, Any], *, where: str | None = None) -> type[Event]:
    """The event model of a record schema (an ``.avsc`` dict); ``where`` names it in errors (a file)."""
    key = json.dumps(schema, sort_keys=True)
    with _lock:
        model = _cache.get(key)
        if model is None:
            model = _cache[key] = _Generator(schema, where).event()
        return model


class _Generator:
    def __init__(self, schema: dict[str, Any], where: str | None) -> None:
        self.schema = schema
        name = schema.get("name", "?")
        namespace = schema.get("namespace")
        self.full_name = name if "." in name or not namespace else f"{namespace}.{name}"
        self.where = f"schema {self.full_name}" + (f" ({where})" if where else "")
        self.named: dict[str, Any] = {}  # full name -> class (records and enums)
        self.defining: set[str] = set()

    def fail(self, reason: str) -> SchemaError:
        return SchemaError(f"{self.where}: {reason}")

    def event(self) -> type[Event]:
        if self.schema.get("type") != "record":
            raise self.fail("an event schema must be a record")
        namespace, _, name = self.full_name.rpartition(".")
        fields = {f.get("name"): f for f in self.schema.get("fields", [])}
        self._check_event_field(fields, "event_id", "string", "string")
        self._check_event_field(
            fields,
            "occurred_at",
            {"type": "long", "logicalType": "timestamp-millis"},
            "long timestamp-millis",
        )
        namespace_dict = self._record_namespace(
            self.schema, namespace or None, skip=("event_id", "occurred_at")
        )
        namespace_dict["__annotations__"].update(
            {"avro_name": ClassVar[str], "key_field": ClassVar[str | None]}
        )
        namespace_dict["avro_name"] = self.full_name
        namespace_dict["key_field"] = None
        model: type[Event] = type(name, (Event,), namespace_dict)
        return model

    def _check_event_field(self, fields: dict[str, Any], name: str, expected: Any, say: str) -> None:
        field = fields.get(name)
        if field is None:
            raise self.fail(
                f"a kep event needs the field {name!r} ({say}): every event carries event_id (the idempotency "
                "key) and occurred_at; add them as the record's first two fields"
            )
        found = field.get("type")
        if isinstance(found, dict) and isinstance(expected, dict):
            ok = all(found.get(key) == value for key, value in expected.items())
        else:
            ok = found == expected or (
                isinstance(found, dict) and found.get("type") == expected and len(found) == 1
            )
        if not ok:
            raise self.fail(f"field {name!r} must be {say}, not {json.dumps(found)}")

    def _record_namespace(
        self, schema: dict[str, Any], namespace: str | None, skip: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        annotations: dict[str, Any] = {}
        values: dict[str, Any] = {}
        for field in schema.get("fields", []):
            name = field.get("name")
            if not isinstance(name, str):
                raise self.fail(f"a field of record {schema.get('name')} has no name")
            if name in skip:
                continue
            where = f"field {schema['name']}.{name}"
            if name.startswith("_") or keyword.iskeyword(name) or name in _RESERVED:
                raise self.fail(
                    f"{where}: {name!r} cannot be a model field (a Python keyword, a leading underscore, or a "
                    "name pydantic models already use); rename the field in a new schema version"
                )
            annotation = self.annotation(field["type"], namespace, where)
            annotations[name] = annotation
            description = field.get("doc")
            if "default" in field:
                default = self.default(field["type"], namespace, field["default"], where)
                values[name] = Field(default=default, description=description, validate_default=True)
            else:
                values[name] = Field(description=description)
        return {
            "__annotations__": annotations,
            "__module__": GENERATED_MODULE,
            "__doc__": schema.get("doc"),
            _SCHEMA_ATTR: copy.deepcopy(schema),
            **values,
        }

    def annotation(self, avro: Any, namespace: str | None, where: str) -> Any:
        if isinstance(avro, str):
            return self._named_or_primitive(avro, namespace, where)
        if isinstance(avro, list):
            branches = [self.annotation(branch, namespace, where) for branch in avro]
            union = branches[0]
            for branch in branches[1:]:
                union = union | branch
            return union
        if not isinstance(avro, dict):
            raise self.fail(f"{where}: not an Avro type: {avro!r}")
        kind = avro.get("type")
        logical = avro.get("logicalType")
        if logical is not None:
            if logical == "timestamp-millis" and kind == "long":
                return datetime
            raise self.fail(
                f"{where}: logical type {logical!r} is not supported by kep's models "
                "(timestamp-millis is; use the plain type)"
            )
        if kind in _PRIMITIVES:
            return _PRIMITIVES[kind]
        if kind == "array":
            return list[self.annotation(avro["items"], namespace, f"{where}[]")]  # type: ignore[misc]
        if kind == "map":
            return dict[str, self.annotation(avro["values"], namespace, f"{where}{{}}")]  # type: ignore[misc]
        if kind == "enum":
            return self._enum(avro, namespace, where)
        if kind in ("record", "error"):
            return self._record(avro, namespace, where)
        raise self.fail(f"{where}: Avro type {kind!r} is not supported by kep's models")

    def _named_or_primitive(self, avro: str, namespace: str | None, where: str) -> Any:
        if avro in _PRIMITIVES:
            return _PRIMITIVES[avro]
        full = _full_name(avro, namespace)
        if full in self.defining:
            raise self.fail(f"{where}: record {full} refers to itself; recursive records are not supported")
        if full not in self.named:
            raise self.fail(f"{where}: unknown type {avro!r}")
        return self.named[full]

    def _enum(self, avro: dict[str, Any], namespace: str | None, where: str) -> type[StrEnum]:
        full = _full_name(avro["name"], avro.get("namespace", namespace))
        symbols = avro.get("symbols") or []
        enum = StrEnum(full.rpartition(".")[2], [(symbol, symbol) for symbol in symbols])  # type: ignore[misc]
        enum.__module__ = GENERATED_MODULE
        if avro.get("doc"):
            enum.__doc__ = avro["doc"]
        self.named[full] = enum
        return enum

    def _record(self, avro: dict[str, Any], namespace: str | None, where: str) -> type[AvroRecord]:
        full = _full_name(avro["name"], avro.get("namespace", namespace))
        own_namespace = full.rpartition(".")[0] or None
        self.defining.add(full)
        try:
            namespace_dict = self._record_namespace(avro, own_namespace)
        finally:
            self.defining.discard(full)
        model: type[AvroRecord] = type(full.rpartition(".")[2], (AvroRecord,), namespace_dict)
        self.named[full] = model
        return model

    def default(self, avro: Any, namespace: str | None, value: Any, where: str) -> Any:
        """The model value of an Avro default (JSON) for a field of type ``avro``."""
        if isinstance(avro, list):  # a union's default is for its first branch
            return self.default(avro[0], namespace, value, where)
        if isinstance(avro, dict):
            if avro.get("logicalType") == "timestamp-millis" and avro.get("type") == "long":
                return _EPOCH + timedelta(milliseconds=value)
            if avro.get("type") in _PRIMITIVES:
                return self.default(avro["type"], namespace, value, where)
        named = self._named_type(avro, namespace)
        if named is not None:
            return named.model_validate(value) if issubclass(named, BaseModel) else named(value)
        if avro == "bytes" and isinstance(value, str):
            return value.encode("latin-1")  # Avro JSON writes bytes defaults as code points 0-255
        return copy.deepcopy(value)  # plain values, arrays and maps of them

    def _named_type(self, avro: Any, namespace: str | None) -> Any:
        """The class made for a record or enum (given by name or inline), or None for other types."""
        if isinstance(avro, str) and avro not in _PRIMITIVES:
            return self.named.get(_full_name(avro, namespace))
        if isinstance(avro, dict) and avro.get("type") in ("record", "error", "enum"):
            return self.named.get(_full_name(avro["name"], avro.get("namespace", namespace)))
        return None


def _full_name(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"
