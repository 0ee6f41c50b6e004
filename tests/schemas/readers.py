"""The schemas and data of the compiled reader tests: an evolved model, the older writer schema it reads, random
records of that writer schema, and the reference reader (fastavro to a dict, then ``_binding.builder``)."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from io import BytesIO
from typing import Any

from fastavro import parse_schema, schemaless_reader
from pydantic import BaseModel, Field

from kep.schemas import AvroRecord, Float32, Int32, avro_schema
from kep.schemas._binding import builder, plain_schema
from tests.schemas.everything import BOUNDARIES, random_text

Read = Callable[[bytes], Any]


class Shade(StrEnum):
    """A shade; the writer's enum orders them differently and has PURPLE, read as OTHER (the default)."""

    RED = "RED"
    GREEN = "GREEN"
    BLUE = "BLUE"
    OTHER = "OTHER"


class Part(AvroRecord):
    """A nested record whose ``weight`` was an int and which gained ``when``."""

    label: str
    weight: float
    when: datetime | None = None


class Node(AvroRecord):
    """A recursive record (``builder`` cannot build those: it recurses for ever)."""

    value: int
    children: list[Node]
    parent: Node | None = None


class Evolved(AvroRecord):
    """The reader side of every resolution rule: promotions, enums, unions, aliases, defaults."""

    text: str
    blob: bytes  # written as a string
    note: str  # written as bytes
    count: int  # written as an int
    ratio: float  # written as a long
    widened: float  # written as a float
    small: Int32
    single: Float32
    at: datetime
    shade: Shade
    part: Part
    parts: list[Part]
    by_name: dict[str, Part]
    maybe: int | None  # written as a plain int
    either: int | str  # written as ["string", "int"]
    renamed: str  # written as old_name
    options: list[int | None]  # written as an array of ["null", "int"]
    labels: dict[str, str | None]
    added_text: str = "fresh"
    added_count: int = 7
    added_flag: bool = True
    added_shade: Shade = Shade.BLUE
    added_at: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    added_maybe: str | None = None
    added_list: list[int] = Field(default_factory=list)  # Avro defaults: evolved_reader_schema()
    added_map: dict[str, int] = Field(default_factory=dict)
    added_part: Part | None = None


def evolved_reader_schema() -> dict[str, Any]:
    """``Evolved``'s schema with what a model cannot say: an enum default, an alias, container and record
    defaults."""
    schema = avro_schema(Evolved)
    fields = {field["name"]: field for field in schema["fields"]}
    fields["shade"]["type"]["default"] = "OTHER"
    fields["renamed"]["aliases"] = ["old_name"]
    fields["added_list"]["default"] = [1, 2, 3]
    fields["added_map"]["default"] = {"a": 1}
    fields["added_part"]["type"] = ["Part", "null"]
    fields["added_part"]["default"] = {"label": "d", "weight": 1.5, "when": None}
    return schema


_GONE_TREE = {
    "type": "record",
    "name": "GoneTree",
    "fields": [
        {"name": "v", "type": "long"},
        {"name": "kids", "type": {"type": "array", "items": "GoneTree"}},
    ],
}
_PART_V1 = {
    "type": "record",
    "name": "Part",
    "fields": [
        {"name": "weight", "type": "int"},
        {"name": "gone", "type": "string"},
        {"name": "label", "type": "string"},
    ],
}
_SHADE_V1 = {"type": "enum", "name": "Shade", "symbols": ["BLUE", "PURPLE", "RED", "GREEN"]}


def evolved_writer_schema() -> dict[str, Any]:
    """What an older producer wrote: other field order, other types, fields the reader dropped."""
    fields: list[tuple[str, Any]] = [
        ("gone_tree", _GONE_TREE),
        ("either", ["string", "int"]),
        ("text", "string"),
        ("gone_text", "string"),
        ("blob", "string"),
        ("note", "bytes"),
        ("gone_flag", "boolean"),
        ("count", "int"),
        ("ratio", "long"),
        ("widened", "float"),
        ("gone_fixed", {"type": "fixed", "name": "Three", "size": 3}),
        ("small", "int"),
        ("single", "float"),
        ("gone_double", "double"),
        ("at", {"type": "long", "logicalType": "timestamp-millis"}),
        ("shade", _SHADE_V1),
        ("gone_shade", "Shade"),
        ("part", _PART_V1),
        ("parts", {"type": "array", "items": "Part"}),
        ("gone_map", {"type": "map", "values": ["null", "double", {"type": "array", "items": "long"}]}),
        ("by_name", {"type": "map", "values": "Part"}),
        ("maybe", "int"),
        ("gone_union", ["null", "string", "long", "Part"]),
        ("old_name", "string"),
        ("options", {"type": "array", "items": ["null", "int"]}),
        ("labels", {"type": "map", "values": ["null", "string"]}),
    ]
    return {"type": "record", "name": "Evolved", "fields": [{"name": n, "type": t} for n, t in fields]}


def _part_v1(rng: random.Random) -> dict[str, Any]:
    return {"weight": rng.choice([0, -1, 2**31 - 1, -(2**31), 300]), "gone": random_text(rng), "label": "p"}


def _gone_tree(rng: random.Random, depth: int) -> dict[str, Any]:
    kids = [_gone_tree(rng, depth - 1) for _ in range(rng.choice([0, 2]) if depth else 0)]
    return {"v": rng.choice(BOUNDARIES), "kids": kids}


def random_writer_record(rng: random.Random) -> dict[str, Any]:
    """A random record of ``evolved_writer_schema()``, as fastavro writes it."""
    ints = [b for b in BOUNDARIES if -(2**31) <= b < 2**31]
    return {
        "gone_tree": _gone_tree(rng, 2),
        "either": rng.choice([random_text(rng), rng.choice(ints)]),
        "text": random_text(rng),
        "gone_text": random_text(rng),
        "blob": random_text(rng),
        "note": random_text(rng).encode(),
        "gone_flag": rng.random() < 0.5,
        "count": rng.choice(ints),
        "ratio": rng.choice(BOUNDARIES),
        "widened": rng.choice([0.0, 1.5, -2.5e38, float("inf"), 3.4028234e38]),
        "gone_fixed": bytes(rng.randrange(256) for _ in range(3)),
        "small": rng.choice(ints),
        "single": rng.choice([0.0, -0.0, 0.1, 1e30]),
        "gone_double": rng.random(),
        "at": rng.choice([0, -1, 1_704_067_200_123, 2**41 + 7, -(2**40)]),
        "shade": rng.choice(_SHADE_V1["symbols"]),
        "gone_shade": rng.choice(_SHADE_V1["symbols"]),
        "part": _part_v1(rng),
        "parts": [_part_v1(rng) for _ in range(rng.choice([0, 1, 3, 70]))],
        "gone_map": {str(i): rng.choice([None, 1.5, [1, -2]]) for i in range(rng.choice([0, 2]))},
        "by_name": {random_text(rng)[:4] + str(i): _part_v1(rng) for i in range(rng.choice([0, 2, 65]))},
        "maybe": rng.choice(ints),
        "gone_union": rng.choice([None, "x", -5, _part_v1(rng)]),
        "old_name": random_text(rng),
        "options": [rng.choice([None, rng.choice(ints)]) for _ in range(rng.choice([0, 3]))],
        "labels": {str(i): rng.choice([None, "x"]) for i in range(rng.choice([0, 2]))},
    }


def write(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    """The Avro body fastavro writes for ``record`` (timestamps as plain longs)."""
    from fastavro import schemaless_writer

    out = BytesIO()
    schemaless_writer(out, parse_schema(plain_schema(schema), named_schemas={}), record)
    return out.getvalue()


def fastavro_reader(writer: dict[str, Any], reader: dict[str, Any], model: type[BaseModel]) -> Read:
    """The reference: fastavro reads a dict (resolving ``writer`` to ``reader``), ``builder`` makes the model."""
    parsed_writer = parse_schema(plain_schema(writer), named_schemas={})
    parsed_reader = None if writer is reader else parse_schema(plain_schema(reader), named_schemas={})
    build = builder(model)

    def read(body: bytes) -> Any:
        return build(schemaless_reader(BytesIO(body), parsed_writer, parsed_reader))  # type: ignore[arg-type]

    return read


def assert_same(got: Any, expected: Any) -> None:
    """Equal models, down to the type of every value (1 is not 1.0, NaN is NaN). The compiled reader keeps the
    model's field order; the reference keeps the writer's, so field order is not compared here."""
    assert _canonical(got) == _canonical(expected)
    _assert_complete(got)


def _canonical(value: Any) -> Any:
    if isinstance(value, BaseModel):
        fields = sorted((name, _canonical(item)) for name, item in value.__dict__.items())
        return type(value), fields, frozenset(value.model_fields_set)
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    if isinstance(value, dict):
        return [(key, _canonical(item)) for key, item in value.items()]
    if isinstance(value, float):
        return float, repr(value)
    return type(value), value


def _assert_complete(model: BaseModel) -> None:
    """Built as ``builder`` builds it, fields in the model's order, nested models too."""
    assert list(model.__dict__) == list(type(model).model_fields)
    assert model.model_fields_set == set(type(model).model_fields)
    assert model.__pydantic_extra__ is None and model.__pydantic_private__ is None
    for value in model.__dict__.values():
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, BaseModel):
                _assert_complete(item)
