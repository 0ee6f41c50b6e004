"""The schema side of ``schemas._reader``: schemas with their names resolved, which writer type a reader type
reads (Avro's resolution rules), the Python annotation of each part of a model, and defaults as model values.

A model's annotations decide the Python value (a ``datetime`` for a ``long``, an ``Enum`` member, a nested
model), exactly as ``_binding.builder`` decides it; the reader schema decides the Avro type read.
"""

from __future__ import annotations

import types
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from kep.schemas._read_support import build

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})
_PROMOTIONS = frozenset(
    {
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
        ("string", "bytes"),
        ("bytes", "string"),
    }
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Unsupported(Exception):
    """The schemas use something readers are not compiled for: fastavro reads those."""


class NoMatch(Unsupported):
    """A writer type the reader type cannot read (in a writer union: an error only when data uses it)."""


def normalize(schema: Any, namespace: str | None, named: dict[str, Any]) -> Any:
    """``schema`` with names resolved: a primitive's name, a union's list, or a dict whose references to a
    named type are that type's own dict (recursion is a cycle). ``Unsupported`` for logical types other than
    ``timestamp-millis`` (fastavro would convert them) and anything unknown."""
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return schema
        name = _full_name(schema, namespace)
        if name not in named:
            raise Unsupported(f"unknown type {name}")
        return named[name]
    if isinstance(schema, list):
        return [normalize(branch, namespace, named) for branch in schema]
    kind = schema.get("type")
    logical = schema.get("logicalType")
    if logical is not None and not (logical == "timestamp-millis" and kind == "long"):
        raise Unsupported(f"logical type {logical}")
    if isinstance(kind, (dict, list)):
        return normalize(kind, namespace, named)
    if kind in PRIMITIVES:
        return kind
    if kind in _NAMED:
        return _named(schema, namespace, named)
    if kind == "array":
        return {"type": "array", "items": normalize(schema["items"], namespace, named)}
    if kind == "map":
        return {"type": "map", "values": normalize(schema["values"], namespace, named)}
    raise Unsupported(f"type {kind!r}")


def _full_name(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _named(schema: dict[str, Any], namespace: str | None, named: dict[str, Any]) -> dict[str, Any]:
    name = _full_name(schema["name"], schema.get("namespace", namespace))
    inner = name.rpartition(".")[0] or None
    kind = "record" if schema["type"] == "error" else schema["type"]
    aliases = [_full_name(alias, inner) for alias in schema.get("aliases", [])]
    node: dict[str, Any] = {"type": kind, "name": name, "aliases": aliases}
    named[name] = node  # before the fields, which may refer to it
    if kind == "enum":
        node["symbols"] = list(schema["symbols"])
        node["default"] = schema.get("default")
    elif kind == "fixed":
        node["size"] = int(schema["size"])
    else:
        node["fields"] = [
            {
                **{key: field[key] for key in ("name", "default") if key in field},
                "aliases": list(field.get("aliases", [])),
                "type": normalize(field["type"], inner, named),
            }
            for field in schema["fields"]
        ]
    return node


def kind_of(node: Any) -> str:
    """``"union"``, a primitive's name, or the ``type`` of a named type, array or map."""
    if isinstance(node, list):
        return "union"
    if isinstance(node, str):
        return node
    kind: str = node["type"]
    return kind


def matches(writer: Any, reader: Any) -> bool:
    """Whether data of ``writer`` (not a union) can be read as ``reader`` (not a union)."""
    wk, rk = kind_of(writer), kind_of(reader)
    if "union" in (wk, rk):
        return False
    if wk in PRIMITIVES or rk in PRIMITIVES:
        return wk == rk or (wk, rk) in _PROMOTIONS
    if wk != rk:
        return False
    if wk in ("array", "map"):
        inner = "items" if wk == "array" else "values"
        w, r = writer[inner], reader[inner]  # a union in them is resolved value by value, as fastavro does
        return "union" in (kind_of(w), kind_of(r)) or matches(w, r)
    if wk == "fixed" and writer["size"] != reader["size"]:
        return False
    short = writer["name"].rpartition(".")[2]
    aliases = reader["aliases"]
    return (
        short == reader["name"].rpartition(".")[2]
        or writer["name"] in aliases
        or short in {alias.rpartition(".")[2] for alias in aliases}
    )


def pick(writer: Any, reader: Any, ann: Any) -> tuple[Any, Any]:
    """The reader type (a branch, if ``reader`` is a union) and its annotation that ``writer`` is read as."""
    if kind_of(reader) != "union":
        if not matches(writer, reader):
            raise NoMatch(f"{kind_of(writer)} cannot be read as {kind_of(reader)}")
        return reader, ann
    for branch in reader:
        if matches(writer, branch):
            return branch, branch_annotation(ann, branch)
    raise NoMatch(f"{kind_of(writer)} is not in the reader's union")


def strip(ann: Any) -> Any:
    """``ann`` without ``Annotated``."""
    while get_origin(ann) is Annotated:
        ann = get_args(ann)[0]
    return ann


def branch_annotation(ann: Any, branch: Any) -> Any:
    """The annotation of one reader union branch: ``X`` of ``X | None``; ``Any`` (a plain value) for a branch
    of ``int | str``, whose branches ``builder`` requires to need no conversion."""
    if branch == "null":
        return None
    tp = strip(ann)
    if get_origin(tp) is Union or get_origin(tp) is types.UnionType:
        others = [arg for arg in get_args(tp) if arg is not type(None)]
        if len(others) == 1:
            return others[0]
        if not all(_plain(arg) for arg in others):
            raise Unsupported(f"a union of several types needing conversion: {tp!r}")  # builder refuses it
        return Any
    return tp


def _plain(ann: Any) -> bool:
    """Whether values of ``ann`` are what fastavro reads, with nothing to convert."""
    tp = strip(ann)
    if get_origin(tp) in (Union, types.UnionType, list, dict):
        return all(_plain(arg) for arg in get_args(tp))
    return not (isinstance(tp, type) and issubclass(tp, (datetime, Enum, BaseModel)))


def is_datetime(ann: Any) -> bool:
    tp = strip(ann)
    return isinstance(tp, type) and issubclass(tp, datetime)


def model_of(ann: Any, what: str) -> type[BaseModel]:
    tp = strip(ann)
    if not (isinstance(tp, type) and issubclass(tp, BaseModel)):
        raise Unsupported(f"{what} without a model")
    return tp


def enum_of(ann: Any, what: str) -> type[Enum]:
    tp = strip(ann)
    if not (isinstance(tp, type) and issubclass(tp, Enum)):
        raise Unsupported(f"{what} without an Enum")
    return tp


def item_annotation(ann: Any, kind: str) -> Any:
    """The annotation of an array's items or a map's values."""
    tp = strip(ann)
    if tp is Any:
        return Any
    if get_origin(tp) is not (dict if kind == "map" else list):
        raise Unsupported(f"{kind} for {tp!r}")
    return get_args(tp)[-1]


def default_value(reader: Any, ann: Any, value: Any) -> Any:
    """The model value of the Avro default ``value`` (JSON) of a field of type ``reader``."""
    try:
        return _default(reader, ann, value)
    except (KeyError, TypeError, ValueError, AttributeError, StopIteration) as exc:
        raise Unsupported(f"default {value!r}: {exc!r}") from exc


def _default(reader: Any, ann: Any, value: Any) -> Any:
    kind = kind_of(reader)
    if kind == "union":  # the default is of the first branch; null, when it is null and a branch is
        branch = "null" if value is None and "null" in reader else next(b for b in reader if b != "null")
        return _default(branch, branch_annotation(ann, branch), value)
    if kind == "record":
        model = model_of(ann, f"default of record {reader['name']}")
        values = {}
        for field in reader["fields"]:
            item = value[field["name"]] if field["name"] in value else field["default"]
            values[field["name"]] = _default(
                field["type"], model.model_fields[field["name"]].annotation, item
            )
        if list(values) != list(model.model_fields):
            raise Unsupported(f"record {reader['name']} does not match {model.__qualname__}")
        return build(model, values)
    if kind == "enum":
        members = {member.value: member for member in enum_of(ann, f"default of enum {reader['name']}")}
        return members[value]
    if kind == "array":
        return [_default(reader["items"], item_annotation(ann, kind), item) for item in value]
    if kind == "map":
        return {key: _default(reader["values"], item_annotation(ann, kind), v) for key, v in value.items()}
    if kind in ("bytes", "fixed"):
        return value.encode("latin-1")
    if kind in ("float", "double"):
        return float(value)
    if kind in ("int", "long") and is_datetime(ann):
        return _EPOCH + timedelta(milliseconds=value)
    return value
