"""The Avro schema a pydantic model implies, so models and ``.avsc`` files cannot drift apart.

``avro_schema(OrderPlaced)`` returns the record schema, field for field, in the model's field order:

| Python                         | Avro                                              |
| ------------------------------ | ------------------------------------------------- |
| ``str`` / ``bytes`` / ``bool`` | ``string`` / ``bytes`` / ``boolean``              |
| ``int`` (``Int32``)            | ``long`` (``int``)                                |
| ``float`` (``Float32``)        | ``double`` (``float``)                            |
| ``datetime``                   | ``long`` with logical type ``timestamp-millis``   |
| an ``Enum`` of strings         | ``enum`` named after the class                    |
| an ``AvroRecord`` subclass     | ``record`` named after the class (event's namespace) |
| ``list[X]`` / ``dict[str, X]`` | ``array`` / ``map``                               |
| ``X | None``                   | ``["null", X]`` (``[X, "null"]`` when the default is not None) |

Docs come from the class docstring (whitespace collapsed) and ``Field(description=...)``; a plain field
default becomes the Avro default (``default_factory`` values are per instance and give none).
"""

from __future__ import annotations

import copy
import inspect
import types
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from kep.schemas.errors import SchemaError
from kep.schemas.events import SOURCE_SCHEMA_ATTR, AvroRecord, Event
from kep.schemas.fingerprint import canonical_form

__all__ = ["AvroType", "Float32", "Int32", "avro_schema", "schema_drift"]


@dataclass(frozen=True, slots=True)
class AvroType:
    """Annotation metadata choosing a narrower Avro primitive: ``Annotated[int, AvroType("int")]``."""

    name: str


_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def _int32(value: int) -> int:
    """Avro ``int`` is 32-bit. Checked by a validator rather than ``Field(ge=, le=)`` metadata, which would
    replace the field's own bounds: ``quantity: Int32 = Field(ge=1)`` would then accept 0."""
    if not _INT32_MIN <= value <= _INT32_MAX:
        raise ValueError(f"{value} does not fit an Avro int (32-bit, {_INT32_MIN} to {_INT32_MAX})")
    return value


Int32 = Annotated[int, AvroType("int"), AfterValidator(_int32)]
"""An ``int`` stored as Avro ``int`` (32-bit) rather than ``long``; a field's own bounds still apply."""
Float32 = Annotated[float, AvroType("float")]
"""A ``float`` stored as Avro ``float`` (32-bit) rather than ``double``."""

_PRIMITIVES: dict[type, str] = {str: "string", bytes: "bytes", bool: "boolean", int: "long", float: "double"}
_NARROWING = {("int", "long"), ("float", "double")}
_TIMESTAMP_MILLIS = {"type": "long", "logicalType": "timestamp-millis"}


def avro_schema(model: type[AvroRecord]) -> dict[str, Any]:
    """The Avro record schema implied by ``model`` (an ``Event`` subclass or a nested ``AvroRecord``).

    A model generated from a schema (``schemas.generated``) implies exactly that schema: a copy of it.
    """
    source: dict[str, Any] | None = model.__dict__.get(SOURCE_SCHEMA_ATTR)
    if source is not None:
        return copy.deepcopy(source)
    full_name = getattr(model, "avro_name", None) if issubclass(model, Event) else None
    if full_name is None:
        full_name = model.__name__
    namespace, _, name = full_name.rpartition(".")
    return _Builder().record(model, name, namespace or None)


def schema_drift(model: type[AvroRecord], schema: dict[str, Any]) -> str | None:
    """None when ``schema`` is exactly what ``model`` implies; otherwise what differs, in words."""
    implied = avro_schema(model)
    if implied == schema:
        return None
    if canonical_form(implied) != canonical_form(schema):
        return "its fields or types differ from the model's"
    return "its docs or defaults differ from the model's"


def _doc(obj: type) -> str | None:
    text = obj.__dict__.get("__doc__")
    return " ".join(inspect.cleandoc(text).split()) if text else None


class _Builder:
    """Walks one model; remembers named types already defined so later uses refer to them by name."""

    def __init__(self) -> None:
        self._defined: set[str] = set()

    def record(self, model: type[BaseModel], name: str, namespace: str | None = None) -> dict[str, Any]:
        self._defined.add(name)
        schema: dict[str, Any] = {"type": "record", "name": name}
        if namespace:
            schema["namespace"] = namespace
        doc = _doc(model)
        if doc:
            schema["doc"] = doc
        schema["fields"] = [self._field(model, fname, info) for fname, info in model.model_fields.items()]
        return schema

    def _field(self, model: type[BaseModel], name: str, info: FieldInfo) -> dict[str, Any]:
        where = f"{model.__name__}.{name}"
        has_default = info.default is not PydanticUndefined and info.default_factory is None
        default = info.default if has_default else None
        field: dict[str, Any] = {
            "name": name,
            "type": self._type(info.annotation, list(info.metadata), where, null_first=default is None),
        }
        if info.description:
            field["doc"] = info.description
        if has_default:
            field["default"] = _avro_default(default, where)
        return field

    def _type(self, tp: Any, metadata: list[Any], where: str, *, null_first: bool = True) -> Any:
        origin = get_origin(tp)
        if origin is Annotated:
            inner, *extra = get_args(tp)
            return self._type(inner, metadata + extra, where, null_first=null_first)
        if origin is Union or origin is types.UnionType:
            return self._union(get_args(tp), metadata, where, null_first)
        if origin is list:
            (item,) = get_args(tp)
            return {"type": "array", "items": self._type(item, [], f"{where}[]")}
        if origin is dict:
            key, value = get_args(tp)
            if key is not str:
                raise SchemaError(f"{where}: Avro map keys are strings, not {key!r}")
            return {"type": "map", "values": self._type(value, [], f"{where}{{}}")}
        if isinstance(tp, type):
            return self._class(tp, metadata, where)
        raise SchemaError(f"{where}: no Avro type for {tp!r}")

    def _union(self, args: tuple[Any, ...], metadata: list[Any], where: str, null_first: bool) -> list[Any]:
        branches = [self._type(a, metadata, where) for a in args if a is not type(None)]
        if len(branches) < len(args):
            return ["null", *branches] if null_first else [*branches, "null"]
        return branches

    def _class(self, tp: type, metadata: list[Any], where: str) -> Any:
        if tp in _PRIMITIVES:
            avro = _PRIMITIVES[tp]
            for item in metadata:
                if isinstance(item, AvroType):
                    if (item.name, avro) not in _NARROWING:
                        raise SchemaError(f"{where}: AvroType({item.name!r}) does not fit {tp.__name__}")
                    avro = item.name
            return avro
        if issubclass(tp, datetime):
            return dict(_TIMESTAMP_MILLIS)
        if issubclass(tp, Enum):
            return self._enum(tp, where)
        if issubclass(tp, AvroRecord):
            if issubclass(tp, Event):
                raise SchemaError(f"{where}: an event cannot nest another event ({tp.__name__})")
            return tp.__name__ if tp.__name__ in self._defined else self.record(tp, tp.__name__)
        raise SchemaError(f"{where}: no Avro type for {tp.__name__}")

    def _enum(self, tp: type[Enum], where: str) -> Any:
        if tp.__name__ in self._defined:
            return tp.__name__
        symbols = [member.value for member in tp]
        if not all(isinstance(symbol, str) for symbol in symbols):
            raise SchemaError(f"{where}: enum {tp.__name__} must have string values (the Avro symbols)")
        self._defined.add(tp.__name__)
        schema: dict[str, Any] = {"type": "enum", "name": tp.__name__}
        doc = _doc(tp)
        if doc:
            schema["doc"] = doc
        schema["symbols"] = symbols
        return schema


def _avro_default(value: Any, where: str) -> Any:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return value.decode("latin-1")  # Avro JSON encodes bytes defaults as code points 0-255
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    raise SchemaError(f"{where}: default {value!r} has no Avro form; use a default_factory")
