"""Fast conversion between Avro data (dicts, lists, strings) and models, for the codecs' hot paths.

Decoding builds models without validating again: the Avro reader already guarantees the data satisfies the
reader schema, which equals the model's schema (``check_binding`` proves it once per schema, and a test keeps
the shop example's files equal to its models). That skips pydantic's validator (it adds ~45% to an OrderPlaced
decode) and ``model_construct`` too, which costs even more than validating for nested records. Encoding
hands fastavro the model's own ``__dict__`` (copied only when a field needs converting), never
``model_dump()``.

``timestamp-millis`` is converted here rather than by fastavro's logical-type layer, which costs about three
times as much: the codecs hand fastavro schemas with that logical type stripped (``plain_schema``), and the
converters below turn milliseconds into aware UTC datetimes and back.

Both directions are compiled once per model into closures over a per-field converter list.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from kep.schemas.errors import SchemaError
from kep.schemas.events import AvroRecord
from kep.schemas.fingerprint import canonical_form
from kep.schemas.model_schema import avro_schema

Convert = Callable[[Any], Any]
Builder = Callable[[dict[str, Any]], Any]
Dumper = Callable[[Any], dict[str, Any]]

_new = object.__new__
_set = object.__setattr__
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def _slot_setter(name: str) -> Callable[[Any, Any], None]:
    descriptor = BaseModel.__dict__.get(name)
    setter = getattr(descriptor, "__set__", None)
    if setter is not None:
        return setter  # type: ignore[no-any-return]  # the slot's own setter: cheaper than object.__setattr__
    return functools.partial(_set_named, name)


def _set_named(name: str, obj: Any, value: Any) -> None:
    _set(obj, name, value)


_set_fields_set = _slot_setter("__pydantic_fields_set__")
_set_extra = _slot_setter("__pydantic_extra__")
_set_private = _slot_setter("__pydantic_private__")


def plain_schema(schema: Any) -> Any:
    """A copy of ``schema`` without ``timestamp-millis`` logical types (the converters handle those)."""
    if isinstance(schema, dict):
        if schema.get("logicalType") == "timestamp-millis" and schema.get("type") == "long":
            return "long"
        return {key: plain_schema(value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [plain_schema(item) for item in schema]
    return schema


def check_binding(model: type[AvroRecord], schema: dict[str, Any], where: str) -> None:
    """Raise ``SchemaError`` unless ``schema`` (reader or writer) is exactly what ``model`` implies."""
    if canonical_form(schema) != canonical_form(avro_schema(model)):
        raise SchemaError(
            f"{where} does not match the model {model.__module__}.{model.__qualname__}: "
            "export the model's schema (kep schemas export) as a new version, or fix the model"
        )


@functools.cache
def builder(model: type[BaseModel]) -> Builder:
    """Compile the function turning the reader's dict for ``model`` into the model, in place."""
    # Shared by every instance: it already holds every field, and pydantic only ever adds field names to it
    # (or copies it), so sharing is safe and saves a set per object.
    fields_set = set(model.model_fields)
    converters = _field_converters(model, _decoder)

    def build(data: dict[str, Any]) -> Any:
        for name, convert in converters:
            data[name] = convert(data[name])
        obj = _new(model)
        _set(obj, "__dict__", data)
        _set_fields_set(obj, fields_set)
        _set_extra(obj, None)
        _set_private(obj, None)
        return obj

    return build


@functools.cache
def dumper(model: type[BaseModel]) -> Dumper:
    """Compile the function giving the dict fastavro writes for a ``model`` (its ``__dict__`` if it can)."""
    converters = _field_converters(model, _encoder)
    if not converters:
        return _instance_dict

    def dump(obj: Any) -> dict[str, Any]:
        data: dict[str, Any] = obj.__dict__.copy()
        for name, convert in converters:
            data[name] = convert(data[name])
        return data

    return dump


def _instance_dict(obj: Any) -> dict[str, Any]:
    data: dict[str, Any] = obj.__dict__
    return data


def _field_converters(
    model: type[BaseModel], for_type: Callable[[Any], Convert | None]
) -> tuple[tuple[str, Convert], ...]:
    pairs = []
    for name, info in model.model_fields.items():
        convert = for_type(info.annotation)
        if convert is not None:
            pairs.append((name, convert))
    return tuple(pairs)


def _decoder(tp: Any) -> Convert | None:
    """Converter from Avro data to the Python value of type ``tp``; None when the value is already right."""
    return _converter(tp, _decoder, _enum_decoder, builder, _from_millis)


def _encoder(tp: Any) -> Convert | None:
    """Converter from the Python value of type ``tp`` to what fastavro writes; None when it can go as is."""
    return _converter(tp, _encoder, _enum_encoder, dumper, _to_millis)


def _converter(
    tp: Any,
    recurse: Callable[[Any], Convert | None],
    for_enum: Callable[[type[Enum]], Convert],
    for_record: Callable[[type[BaseModel]], Convert],
    for_datetime: Convert,
) -> Convert | None:
    origin = get_origin(tp)
    if origin is Annotated:
        return recurse(get_args(tp)[0])
    if origin is Union or origin is types.UnionType:
        return _optional(tp, recurse)
    if origin is list:
        item = recurse(get_args(tp)[0])
        return None if item is None else functools.partial(_each, item)
    if origin is dict:
        value = recurse(get_args(tp)[1])
        return None if value is None else functools.partial(_each_value, value)
    if isinstance(tp, type) and issubclass(tp, datetime):
        return for_datetime
    if isinstance(tp, type) and issubclass(tp, Enum):
        return for_enum(tp)
    if isinstance(tp, type) and issubclass(tp, AvroRecord):
        return for_record(tp)
    return None


def _optional(tp: Any, recurse: Callable[[Any], Convert | None]) -> Convert | None:
    branches = [a for a in get_args(tp) if a is not type(None)]
    if len(branches) != 1:
        if any(recurse(b) is not None for b in branches):
            raise SchemaError(f"unions of several records or enums are not supported: {tp!r}")
        return None
    inner = recurse(branches[0])
    return None if inner is None else functools.partial(_unless_none, inner)


def _enum_decoder(tp: type[Enum]) -> Convert:
    members = {member.value: member for member in tp}
    return members.__getitem__


def _enum_encoder(tp: type[Enum]) -> Convert:
    return _enum_value


def _enum_value(member: Any) -> Any:
    return member.value


def _from_millis(millis: int) -> datetime:
    return _EPOCH + _MILLISECOND * millis


def _to_millis(value: datetime) -> int:
    return (value - _EPOCH) // _MILLISECOND


def _each(convert: Convert, items: list[Any]) -> list[Any]:
    return [convert(item) for item in items]


def _each_value(convert: Convert, mapping: dict[str, Any]) -> dict[str, Any]:
    return {key: convert(value) for key, value in mapping.items()}


def _unless_none(convert: Convert, value: Any) -> Any:
    return None if value is None else convert(value)
