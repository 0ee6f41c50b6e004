"""The compiled reader builds exactly the models fastavro and ``builder`` built, for every type and every schema
resolution rule, and steps aside for schemas it does not compile (fastavro reads those)."""

from __future__ import annotations

import random
import uuid
from typing import Any, ClassVar

import pytest

from kep.schemas import (
    AvroRecord,
    ConfluentCodec,
    Event,
    LocalSchemaRegistry,
    SingleObjectCodec,
    avro_schema,
    event_type_for,
)
from kep.schemas import _reader as reader_module
from kep.schemas._binding import dumper
from kep.schemas._plans import event_reader
from kep.schemas._reader import compile_reader
from kep.schemas.confluent import schema_registry_client
from shop.orders import OrderPlaced
from tests.schemas.conftest import SchemaDir, reference_body
from tests.schemas.everything import Colour, Everything, random_everything
from tests.schemas.readers import (
    Evolved,
    Node,
    assert_same,
    evolved_reader_schema,
    evolved_writer_schema,
    fastavro_reader,
    random_writer_record,
    write,
)

pytestmark = pytest.mark.unit

ORDER = "kep.orders.OrderPlaced"


def _compiled(writer: dict[str, Any], reader: dict[str, Any], model: Any) -> Any:
    read = compile_reader(writer, reader, model, 0, model.__name__)
    assert read is not None
    return read


def test_every_type_is_read_as_fastavro_and_the_builder_read_it() -> None:
    schema = avro_schema(Everything)
    compiled, reference = _compiled(schema, schema, Everything), fastavro_reader(schema, schema, Everything)
    rng = random.Random(11)
    for _ in range(300):
        body = write(schema, dumper(Everything)(random_everything(rng)))
        assert_same(compiled(body), reference(body))


def test_old_data_is_resolved_to_the_new_schema_as_fastavro_resolves_it() -> None:
    """Promotions, string <-> bytes, enum symbols and defaults, unions on either side, aliases, reordered,
    removed and added fields (with defaults of every kind), nested and repeated records."""
    writer, reader = evolved_writer_schema(), evolved_reader_schema()
    compiled, reference = _compiled(writer, reader, Evolved), fastavro_reader(writer, reader, Evolved)
    rng = random.Random(12)
    for _ in range(300):
        body = write(writer, random_writer_record(rng))
        got = compiled(body)
        assert_same(got, reference(body))
    assert got.added_list == [1, 2, 3] and got.added_part is not None and got.added_part.label == "d"


def test_defaults_that_are_lists_dicts_or_records_are_not_shared_between_events() -> None:
    writer, reader = evolved_writer_schema(), evolved_reader_schema()
    compiled = _compiled(writer, reader, Evolved)
    body = write(writer, random_writer_record(random.Random(1)))
    first, second = compiled(body), compiled(body)
    assert first == second
    assert first.added_list is not second.added_list
    assert first.added_map is not second.added_map
    assert first.added_part is not second.added_part


def test_nested_records_read_by_functions_give_the_same_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader_module, "_MAX_LINES", 0)  # too big to inline: every record gets a function
    schema = avro_schema(Everything)
    writer, reader = evolved_writer_schema(), evolved_reader_schema()
    read_everything, read_evolved = _compiled(schema, schema, Everything), _compiled(writer, reader, Evolved)
    assert "def record" in (read_everything.__doc__ or "")
    rng = random.Random(13)
    for _ in range(50):
        body = write(schema, dumper(Everything)(random_everything(rng)))
        assert_same(read_everything(body), fastavro_reader(schema, schema, Everything)(body))
        body = write(writer, random_writer_record(rng))
        assert_same(read_evolved(body), fastavro_reader(writer, reader, Evolved)(body))


def _tree(rng: random.Random, depth: int) -> dict[str, Any]:
    children = [_tree(rng, depth - 1) for _ in range(rng.choice([0, 1, 3]) if depth else 0)]
    parent: dict[str, Any] | None = rng.choice([None, {"value": -1, "children": [], "parent": None}])
    return {"value": rng.randrange(-(2**40), 2**40), "children": children, "parent": parent}


def test_a_recursive_record_is_read() -> None:
    schema = avro_schema(Node)
    compiled = _compiled(schema, schema, Node)
    rng = random.Random(14)
    for _ in range(100):
        record = _tree(rng, 4)
        assert_same(compiled(write(schema, record)), Node.model_validate(record))


def test_shipped_events_decode_as_the_fastavro_path_decodes_them() -> None:
    from shop.samples import sample_events

    registry = LocalSchemaRegistry.default()
    codec = SingleObjectCodec()
    v1 = registry.get(ORDER, 1)
    blobs = []
    for event in sample_events(300, seed=5, kind="mixed"):
        blobs.append(codec.encode(event))
        if isinstance(event, OrderPlaced):  # and as an old producer wrote it
            blobs.append(b"\xc3\x01" + v1.fingerprint + reference_body(v1.schema, event.model_dump()))
    old_paths: dict[bytes, Any] = {}
    for data in blobs:
        if data[:10] not in old_paths:
            writer = registry.by_fingerprint(data[2:10])
            old_paths[data[:10]] = event_reader(
                registry, writer.name, writer.schema, "", data, 10, compiled=False
            )
        assert_same(codec.decode(data), old_paths[data[:10]](data))
    assert len(old_paths) == 3  # OrderPlaced v1 and v2, PaymentCaptured


def test_the_confluent_codec_reads_with_compiled_readers_too() -> None:
    from shop.samples import sample_events

    client = schema_registry_client(f"mock://compiled-{uuid.uuid4().hex}")
    writer, reader = ConfluentCodec(client), ConfluentCodec(client)
    for event in sample_events(50, seed=6, kind="mixed"):
        decoded = reader.decode(writer.encode(event))
        assert decoded == event and type(decoded) is type(event)
    assert all("def read(data)" in (read.__doc__ or "") for read in reader._readers.values())


def test_every_shipped_version_compiles_against_the_newest() -> None:
    registry = LocalSchemaRegistry.default()
    for name in registry.names():
        newest = registry.latest(name)
        for version in registry.versions(name):
            old = registry.get(name, version)
            assert compile_reader(old.schema, newest.schema, event_type_for(name), 10, name) is not None, old


_RECORD = {"type": "record", "name": "A"}


@pytest.mark.parametrize(
    ("writer", "reader"),
    [
        (
            {**_RECORD, "fields": [{"name": "x", "type": "string"}]},
            {**_RECORD, "fields": [{"name": "x", "type": "long"}]},
        ),
        (
            {**_RECORD, "fields": [{"name": "x", "type": "long"}]},
            {**_RECORD, "fields": [{"name": "x", "type": "int"}]},
        ),
        ({**_RECORD, "fields": []}, {**_RECORD, "fields": [{"name": "x", "type": "long"}]}),
        (
            {**_RECORD, "fields": [{"name": "x", "type": {"type": "int", "logicalType": "date"}}]},
            {**_RECORD, "fields": [{"name": "x", "type": "int"}]},
        ),
        (
            {**_RECORD, "fields": [{"name": "x", "type": {"type": "fixed", "name": "F", "size": 2}}]},
            {**_RECORD, "fields": [{"name": "x", "type": {"type": "fixed", "name": "F", "size": 2}}]},
        ),
        (
            {**_RECORD, "fields": [{"name": "y", "type": "long"}]},
            {**_RECORD, "fields": [{"name": "y", "type": "long"}]},
        ),
    ],
    ids=["string-as-long", "long-as-int", "no-default", "date-logical-type", "fixed", "not-the-model"],
)
def test_schemas_it_does_not_compile_get_none(writer: dict[str, Any], reader: dict[str, Any]) -> None:
    class A(AvroRecord):
        x: int = 0

    plain = {**_RECORD, "fields": [{"name": "x", "type": "long"}]}
    assert compile_reader(plain, plain, A, 0, "A") is not None
    assert compile_reader(writer, reader, A, 0, "A") is None


class Mixed(AvroRecord):
    """A union of a string and an enum: ``builder`` refuses it, and so does the compiler."""

    value: str | Colour


def test_a_union_of_several_types_to_convert_is_not_compiled() -> None:
    schema = avro_schema(Mixed)
    assert compile_reader(schema, schema, Mixed, 0, "Mixed") is None


class Deep(AvroRecord):
    """Arrays nested deeper than Python nests loops in one function."""

    grid: list[list[list[list[list[list[list[list[list[list[list[list[int]]]]]]]]]]]]


def test_nesting_python_cannot_compile_is_left_to_fastavro() -> None:
    schema = avro_schema(Deep)
    assert compile_reader(schema, schema, Deep, 0, "Deep") is None


class Noted(Event):
    """An event whose schema has a logical type fastavro ignores and the compiler does not know."""

    avro_name: ClassVar[str] = "kep.tests.Noted"

    note: str


def test_what_it_does_not_compile_is_read_by_fastavro(schema_dir: SchemaDir) -> None:
    schema = avro_schema(Noted)
    schema["fields"][-1]["type"] = {"type": "string", "logicalType": "kep-note"}
    registry = LocalSchemaRegistry(schema_dir({"kep.tests.Noted.v1.avsc": schema}))
    assert compile_reader(schema, schema, Noted, 10, "kep.tests.Noted") is None
    codec = SingleObjectCodec(registry)
    event = Noted(note="hello")
    assert codec.decode(codec.encode(event)) == event
    (read,) = codec._readers.values()
    assert "def read(data)" not in (read.__doc__ or "")
