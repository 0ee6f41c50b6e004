from __future__ import annotations

import copy
from typing import Any

import pytest

from kep.schemas import (
    CompatibilityMode,
    IncompatibleSchemaError,
    InvalidSchemaError,
    LocalSchemaRegistry,
    check_compatibility,
    check_registry,
    ensure_compatible,
)
from tests.schemas.conftest import SchemaDir, shipped

pytestmark = pytest.mark.unit


def record(*fields: dict[str, Any], name: str = "Thing") -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "kep.tests", "fields": list(fields)}


def field(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def problems(old: dict[str, Any], new: dict[str, Any], mode: str) -> list[str]:
    return [str(item) for item in check_compatibility(old, new, mode)]


BASE = record(field("id", "string"), field("count", "int"))


def test_identical_schemas_are_compatible_in_every_mode() -> None:
    for mode in CompatibilityMode:
        assert check_compatibility(BASE, copy.deepcopy(BASE), mode) == []


def test_shipped_order_placed_evolution_is_fully_compatible() -> None:
    v1, v2 = shipped("kep.orders.OrderPlaced.v1.avsc"), shipped("kep.orders.OrderPlaced.v2.avsc")
    assert check_compatibility(v1, v2, "FULL") == []


def test_added_field_without_default_breaks_backward_only() -> None:
    new = record(*BASE["fields"], field("note", "string"))
    assert problems(BASE, new, "BACKWARD") == [
        "Thing.note: the new schema requires it (no default) but old data does not have it"
    ]
    assert problems(BASE, new, "FORWARD") == []
    assert len(problems(BASE, new, "FULL")) == 1


def test_added_field_with_default_is_fully_compatible() -> None:
    new = record(*BASE["fields"], field("note", "string", default=""))
    assert problems(BASE, new, "FULL") == []


def test_removed_field_without_default_breaks_forward_only() -> None:
    new = record(field("id", "string"))
    assert problems(BASE, new, "BACKWARD") == []
    assert problems(BASE, new, "FORWARD") == [
        "Thing.count: the old schema requires it (no default) but new data does not have it"
    ]


def test_removed_field_that_had_a_default_is_fully_compatible() -> None:
    old = record(field("id", "string"), field("count", "int", default=0))
    assert problems(old, record(field("id", "string")), "FULL") == []


def test_type_change_names_the_field_and_both_types() -> None:
    new = record(field("id", "long"), field("count", "int"))
    assert problems(BASE, new, "BACKWARD") == [
        "Thing.id: type changed: old data is string, the new schema reads long"
    ]


@pytest.mark.parametrize(
    ("old", "new"),
    [("int", "long"), ("int", "float"), ("int", "double"), ("long", "float"), ("long", "double"),
     ("float", "double"), ("string", "bytes"), ("bytes", "string")],
)  # fmt: skip
def test_promotions_are_backward_compatible(old: str, new: str) -> None:
    assert problems(record(field("x", old)), record(field("x", new)), "BACKWARD") == []


@pytest.mark.parametrize(("old", "new"), [("long", "int"), ("double", "float"), ("float", "long")])
def test_narrowing_is_not(old: str, new: str) -> None:
    assert problems(record(field("x", old)), record(field("x", new)), "BACKWARD") == [
        f"Thing.x: type changed: old data is {old}, the new schema reads {new}"
    ]


def test_promotion_only_works_one_way_so_full_fails() -> None:
    assert problems(record(field("x", "int")), record(field("x", "long")), "FULL") == [
        "Thing.x: type changed: new data is long, the old schema reads int"
    ]


def enum(*symbols: str, **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "Method", "symbols": list(symbols), **extra}


def test_added_enum_symbol_breaks_forward_unless_the_old_enum_has_a_default() -> None:
    old, new = record(field("m", enum("CARD", "WALLET"))), record(field("m", enum("CARD", "WALLET", "CASH")))
    assert problems(old, new, "BACKWARD") == []
    assert problems(old, new, "FORWARD") == [
        "Thing.m: new data may hold symbol(s) CASH, which the old enum Method lacks and it has no default"
    ]
    with_default = record(field("m", enum("CARD", "WALLET", default="CARD")))
    assert problems(with_default, new, "FORWARD") == []


def test_removed_enum_symbol_breaks_backward() -> None:
    old, new = record(field("m", enum("CARD", "WALLET"))), record(field("m", enum("CARD")))
    assert problems(old, new, "BACKWARD") == [
        "Thing.m: old data may hold symbol(s) WALLET, which the new enum Method lacks and it has no default"
    ]


def test_union_gaining_a_branch_breaks_forward() -> None:
    old, new = record(field("v", ["null", "string"])), record(field("v", ["null", "string", "long"]))
    assert problems(old, new, "BACKWARD") == []
    assert problems(old, new, "FORWARD") == [
        "Thing.v: new data is long, which no branch of the old union [null, string] can read"
    ]


def test_making_a_field_nullable_breaks_forward_and_required_breaks_backward() -> None:
    required, nullable = record(field("v", "string")), record(field("v", ["null", "string"], default=None))
    assert problems(required, nullable, "BACKWARD") == []
    assert problems(required, nullable, "FORWARD") == [
        "Thing.v: type changed: new data is null, the old schema reads string"
    ]
    assert problems(nullable, required, "BACKWARD") == [
        "Thing.v: type changed: old data is null, the new schema reads string"
    ]


def test_nested_record_in_an_array_is_named_by_path() -> None:
    v2 = shipped("kep.orders.OrderPlaced.v2.avsc")
    broken = copy.deepcopy(v2)
    item = broken["fields"][4]["type"]["items"]
    item["fields"][0]["type"] = "int"
    item["fields"].append(field("discount_cents", "long"))
    assert problems(v2, broken, "BACKWARD") == [
        "OrderPlaced.items[].sku: type changed: old data is string, the new schema reads int",
        "OrderPlaced.items[].discount_cents: the new schema requires it (no default) "
        "but old data does not have it",
    ]


def test_map_values_are_checked() -> None:
    old, new = (
        record(field("tags", {"type": "map", "values": "string"})),
        record(field("tags", {"type": "map", "values": "int"})),
    )
    assert problems(old, new, "BACKWARD") == [
        "Thing.tags{}: type changed: old data is string, the new schema reads int"
    ]


def test_array_of_a_different_type_is_a_type_change() -> None:
    old, new = record(field("xs", {"type": "array", "items": "string"})), record(field("xs", "string"))
    assert problems(old, new, "BACKWARD") == [
        "Thing.xs: type changed: old data is array of string, the new schema reads string"
    ]


def test_renamed_record_breaks_unless_aliased() -> None:
    old, new = record(field("id", "string")), record(field("id", "string"), name="Other")
    assert problems(old, new, "BACKWARD") == [
        "Other: type changed: old data is record Thing, the new schema reads record Other"
    ]
    aliased = {**new, "aliases": ["kep.tests.Thing"]}
    assert problems(old, aliased, "BACKWARD") == []


def test_renamed_field_is_compatible_through_an_alias() -> None:
    old, new = record(field("count", "int")), record(field("total", "int", aliases=["count"]))
    assert problems(old, new, "BACKWARD") == []


def test_nested_named_reference_and_fixed_size() -> None:
    def with_fixed(size: int) -> dict[str, Any]:
        digest = {"type": "fixed", "name": "Digest", "size": size}
        return record(field("a", digest), field("b", "Digest"))

    assert problems(with_fixed(16), with_fixed(16), "FULL") == []
    assert problems(with_fixed(16), with_fixed(32), "BACKWARD") == [
        "Thing.a: fixed size changed: old 16, new 32",
        "Thing.b: fixed size changed: old 16, new 32",
    ]


def test_recursive_schemas_terminate() -> None:
    node = record(field("value", "long"), field("next", ["null", "kep.tests.Thing"], default=None))
    grown = record(
        field("value", "long"), field("label", "string"), field("next", ["null", "Thing"], default=None)
    )
    assert problems(node, node, "FULL") == []
    assert problems(node, grown, "BACKWARD") == [
        "Thing.label: the new schema requires it (no default) but old data does not have it"
    ]


def test_mode_is_case_insensitive_and_invalid_schemas_are_refused() -> None:
    assert check_compatibility(BASE, BASE, "full") == []
    with pytest.raises(ValueError):
        check_compatibility(BASE, BASE, "sideways")
    with pytest.raises(InvalidSchemaError, match="the new schema is not valid Avro"):
        check_compatibility(BASE, record(field("x", "strng")), "BACKWARD")


def test_check_registry_checks_consecutive_versions(schema_dir: SchemaDir) -> None:
    shipped_checks = check_registry(LocalSchemaRegistry.default(), "FULL")
    assert [(c.name, c.old_version, c.new_version, c.ok) for c in shipped_checks] == [
        ("kep.orders.OrderPlaced", 1, 2, True)
    ]
    v1 = record(field("id", "string"))
    v2 = record(field("id", "string"), field("n", "long", default=0))
    v3 = record(field("id", "long"), field("n", "long", default=0))
    directory = schema_dir({f"kep.tests.Thing.v{i}.avsc": s for i, s in enumerate((v1, v2, v3), start=1)})
    checks = check_registry(LocalSchemaRegistry(directory), CompatibilityMode.BACKWARD)
    assert [(c.old_version, c.new_version, c.ok) for c in checks] == [(1, 2, True), (2, 3, False)]
    assert str(checks[1]) == (
        "kep.tests.Thing v2 -> v3 (BACKWARD): incompatible\n"
        "  Thing.id: type changed: old data is string, the new schema reads long"
    )
    with pytest.raises(IncompatibleSchemaError, match=r"(?s)kep\.tests\.Thing v2 -> v3 .*Thing\.id"):
        ensure_compatible(LocalSchemaRegistry(directory), "backward")
    ensure_compatible(LocalSchemaRegistry.default(), "full")
