from __future__ import annotations

import os
from pathlib import Path

import pytest

from kep.schemas import InvalidSchemaError, LocalSchemaRegistry, SchemaError, SchemaNotFoundError, fingerprint
from kep.schemas.registry import KEP_SCHEMA_DIR
from tests.schemas.conftest import SchemaDir, shipped
from tests.support.shop import SHOP_SCHEMAS

pytestmark = pytest.mark.unit

ORDER = "kep.orders.OrderPlaced"


def test_default_registry_reads_the_paths_in_kep_schemas(
    monkeypatch: pytest.MonkeyPatch, schema_dir: SchemaDir
) -> None:
    other = schema_dir({"kep.orders.PaymentCaptured.v1.avsc": shipped("kep.orders.PaymentCaptured.v1.avsc")})
    monkeypatch.setenv(
        "KEP_SCHEMAS", os.pathsep.join([str(SHOP_SCHEMAS / f"{ORDER}.v1.avsc"), "", str(other)])
    )
    registry = LocalSchemaRegistry.default()
    assert registry is LocalSchemaRegistry.default()  # loaded once per value
    assert registry.sources == (KEP_SCHEMA_DIR, SHOP_SCHEMAS / f"{ORDER}.v1.avsc", other)
    assert registry.names() == [
        "kep.batches.BatchCompleted",
        "kep.orders.OrderPlaced",
        "kep.orders.PaymentCaptured",
    ]
    assert registry.versions(ORDER) == [1]
    monkeypatch.setenv("KEP_SCHEMAS", str(SHOP_SCHEMAS))
    assert LocalSchemaRegistry.default().versions(ORDER) == [1, 2]
    assert len(LocalSchemaRegistry.default()) == 4  # kep.batches.BatchCompleted too


def test_kep_ships_only_its_own_events(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEP_SCHEMAS")
    registry = LocalSchemaRegistry.default()
    assert registry.sources == (KEP_SCHEMA_DIR,) and registry.names() == ["kep.batches.BatchCompleted"]
    with pytest.raises(SchemaNotFoundError, match=r"no schema named 'kep\.orders\.OrderPlaced' in "):
        registry.latest(ORDER)
    assert "'schemas:' in the topology file or in KEP_SCHEMAS" in LocalSchemaRegistry().where


def test_several_sources_are_read_together(schema_dir: SchemaDir) -> None:
    v1 = schema_dir({f"{ORDER}.v1.avsc": shipped(f"{ORDER}.v1.avsc")})
    v2 = schema_dir({f"{ORDER}.v2.avsc": shipped(f"{ORDER}.v2.avsc"), "README.md": "not a schema"})
    registry = LocalSchemaRegistry(v1, v2 / f"{ORDER}.v2.avsc", v2)
    assert registry.versions(ORDER) == [1, 2]
    assert registry.where == f"{v1}, {v2 / f'{ORDER}.v2.avsc'}, {v2}"


def test_the_same_version_defined_differently_in_two_sources_is_refused(schema_dir: SchemaDir) -> None:
    first = schema_dir({f"{ORDER}.v1.avsc": shipped(f"{ORDER}.v1.avsc")})
    changed = {**shipped(f"{ORDER}.v1.avsc"), "doc": "another text"}
    second = schema_dir({f"{ORDER}.v1.avsc": changed})
    with pytest.raises(
        InvalidSchemaError,
        match=rf"{second}/{ORDER}\.v1\.avsc: .* v1 is also defined, differently, in {first}",
    ):
        LocalSchemaRegistry(first, second)
    same = schema_dir({f"{ORDER}.v1.avsc": shipped(f"{ORDER}.v1.avsc")})
    assert LocalSchemaRegistry(first, same).versions(ORDER) == [1]  # an identical copy is harmless


def test_schema_version_carries_name_version_schema_and_fingerprint() -> None:
    registry = LocalSchemaRegistry(SHOP_SCHEMAS)
    v1 = registry.get(ORDER, 1)
    assert (v1.name, v1.version) == (ORDER, 1)
    assert v1.path == SHOP_SCHEMAS / "kep.orders.OrderPlaced.v1.avsc"
    assert v1.schema == shipped("kep.orders.OrderPlaced.v1.avsc")
    assert v1.parsed["name"] == ORDER and v1.parsed["__fastavro_parsed"]
    assert v1.fingerprint == fingerprint(v1.schema) and len(v1.fingerprint) == 8
    assert registry.by_fingerprint(v1.fingerprint) is v1
    assert registry.by_fingerprint(registry.latest(ORDER).fingerprint).version == 2


def test_unknown_name_version_or_fingerprint_is_schema_not_found() -> None:
    registry = LocalSchemaRegistry(SHOP_SCHEMAS)
    with pytest.raises(SchemaNotFoundError, match=r"no schema named 'kep\.orders\.Nope'.*known: kep\.orders"):
        registry.latest("kep.orders.Nope")
    with pytest.raises(SchemaNotFoundError, match=r"OrderPlaced has no version 9 .*versions: 1, 2"):
        registry.get(ORDER, 9)
    with pytest.raises(SchemaNotFoundError, match="0001020304050607"):
        registry.by_fingerprint(bytes(range(8)))


def test_versions_sort_numerically(schema_dir: SchemaDir) -> None:
    v2 = shipped("kep.orders.OrderPlaced.v2.avsc")
    v10 = {**v2, "fields": [*v2["fields"], {"name": "note", "type": "string", "default": ""}]}
    directory = schema_dir({f"{ORDER}.v2.avsc": v2, f"{ORDER}.v10.avsc": v10})
    registry = LocalSchemaRegistry(directory)
    assert registry.versions(ORDER) == [2, 10]
    assert registry.latest(ORDER).version == 10


def test_invalid_json_names_the_file_and_the_line(schema_dir: SchemaDir) -> None:
    directory = schema_dir({"a.b.Thing.v1.avsc": '{\n  "type": "record",\n  "name": "Thing",,\n}'})
    with pytest.raises(InvalidSchemaError, match=r"a\.b\.Thing\.v1\.avsc: not valid JSON: .* line 3"):
        LocalSchemaRegistry(directory)


def test_invalid_avro_names_the_file_and_the_reason(schema_dir: SchemaDir) -> None:
    bad_type = {
        "type": "record",
        "name": "Thing",
        "namespace": "a.b",
        "fields": [{"name": "x", "type": "strng"}],
    }
    directory = schema_dir({"a.b.Thing.v1.avsc": bad_type})
    with pytest.raises(InvalidSchemaError, match=r"a\.b\.Thing\.v1\.avsc: not a valid Avro schema: .*strng"):
        LocalSchemaRegistry(directory)


def test_bad_default_names_the_file(schema_dir: SchemaDir) -> None:
    schema = {
        "type": "record",
        "name": "Thing",
        "namespace": "a.b",
        "fields": [{"name": "x", "type": "long", "default": "ten"}],
    }
    with pytest.raises(InvalidSchemaError, match=r"Thing\.v1\.avsc: not a valid Avro schema"):
        LocalSchemaRegistry(schema_dir({"a.b.Thing.v1.avsc": schema}))


def test_file_name_must_match_the_schema(schema_dir: SchemaDir) -> None:
    schema = {"type": "record", "name": "Thing", "namespace": "a.b", "fields": []}
    with pytest.raises(
        InvalidSchemaError, match=r"file name says a\.b\.Other but the schema is named a\.b\.Thing"
    ):
        LocalSchemaRegistry(schema_dir({"a.b.Other.v1.avsc": schema}))
    with pytest.raises(
        InvalidSchemaError, match=r"Thing\.avsc: the file name must be <full name>\.v<version>"
    ):
        LocalSchemaRegistry(schema_dir({"a.b.Thing.avsc": schema}))


def test_top_level_must_be_a_named_type(schema_dir: SchemaDir) -> None:
    with pytest.raises(
        InvalidSchemaError, match=r"a\.b\.Thing\.v1\.avsc: the top level must be a named type"
    ):
        LocalSchemaRegistry(schema_dir({"a.b.Thing.v1.avsc": '"string"'}))


def test_missing_path_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=f"schema path {tmp_path / 'nope'} does not exist"):
        LocalSchemaRegistry(tmp_path / "nope")


def test_other_files_are_ignored(schema_dir: SchemaDir) -> None:
    directory = schema_dir({"README.md": "# notes", f"{ORDER}.v1.avsc": shipped(f"{ORDER}.v1.avsc")})
    assert LocalSchemaRegistry(directory).names() == [ORDER]
