"""``kep schemas`` in-process, through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from kep.cli.main import app
from kep.schemas import LocalSchemaRegistry, avro_schema
from shop.orders import OrderPlaced
from tests.schemas.conftest import SchemaDir, shipped

pytestmark = pytest.mark.unit

THING_V1: dict[str, Any] = {
    "type": "record",
    "name": "Thing",
    "namespace": "kep.tests",
    "fields": [{"name": "id", "type": "string"}, {"name": "size", "type": "long"}],
}


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(app, ["schemas", *map(str, args)], env={"COLUMNS": "200"})


def flat(text: str) -> str:
    return " ".join(text.split())


def thing_v2(**changes: dict[str, Any]) -> dict[str, Any]:
    fields = [{**f, **changes.get(f["name"], {})} for f in THING_V1["fields"]]
    return {**THING_V1, "fields": fields}


def test_list_shows_names_versions_fingerprints_and_models() -> None:
    result = run("ls")
    assert result.exit_code == 0, result.output
    registry = LocalSchemaRegistry.default()
    lines = result.stdout.splitlines()
    order_line = next(line for line in lines if "kep.orders.OrderPlaced" in line)
    assert "1, 2" in order_line and "OrderPlaced" in order_line.split("kep.orders.OrderPlaced", 1)[1]
    for version in registry:
        assert f"v{version.version} {version.fingerprint_hex}" in result.stdout
    assert "kep.orders.PaymentCaptured" in result.stdout


def test_check_passes_on_the_shipped_schemas_with_a_summary() -> None:
    for mode in ("backward", "forward", "FULL"):
        result = run("check", "--mode", mode)
        assert result.exit_code == 0, result.output
        assert "ok kep.orders.OrderPlaced v1 -> v2" in flat(result.stdout)
        summary = f"3 schema(s), 4 version(s), 1 version pair(s): all {mode.upper()} compatible"
        assert summary in flat(result.stdout)
        assert "models match their newest schemas" in result.stdout


def test_check_fails_naming_schema_versions_and_field(schema_dir: SchemaDir) -> None:
    directory = schema_dir({
        "kep.tests.Thing.v1.avsc": THING_V1,
        "kep.tests.Thing.v2.avsc": thing_v2(size={"type": "string"}),
    })  # fmt: skip
    result = run("check", "--dir", directory)
    assert result.exit_code == 1, result.output
    output = flat(result.output)
    assert "FAIL kep.tests.Thing v1 -> v2 is not BACKWARD compatible:" in output
    assert "Thing.size: type changed: old data is long, the new schema reads string" in output
    assert "1 of 1 version pair(s) break BACKWARD compatibility" in output


def test_check_mode_decides_what_breaks(schema_dir: SchemaDir) -> None:
    removed_without_default = {**THING_V1, "fields": THING_V1["fields"][:1]}
    directory = schema_dir({
        "kep.tests.Thing.v1.avsc": THING_V1,
        "kep.tests.Thing.v2.avsc": removed_without_default,
    })  # fmt: skip
    assert run("check", "--dir", directory, "--mode", "backward").exit_code == 0
    result = run("check", "--dir", directory, "--mode", "full")
    assert result.exit_code == 1
    assert "Thing.size: the old schema requires it (no default) but new data does not have it" in flat(
        result.output
    )


def test_check_reports_a_model_that_drifted_from_its_newest_schema(schema_dir: SchemaDir) -> None:
    name = "kep.orders.OrderPlaced"
    directory = schema_dir({f"{name}.v1.avsc": shipped(f"{name}.v1.avsc")})  # the model is at v2
    result = run("check", "--dir", directory)
    assert result.exit_code == 1
    assert f"drift {name} v1 (" in flat(result.output)
    assert "its fields or types differ from the model's (shop.orders.OrderPlaced)" in flat(result.output)
    assert run("check", "--dir", directory, "--no-models").exit_code == 0


def test_check_names_an_invalid_file(schema_dir: SchemaDir) -> None:
    directory = schema_dir({"kep.tests.Thing.v1.avsc": '{"type": "record"'})
    result = run("check", "--dir", directory)
    assert result.exit_code == 2
    assert "kep.tests.Thing.v1.avsc: not valid JSON" in flat(result.output)


def test_export_prints_the_schema_the_model_implies() -> None:
    result = run("export", "kep.orders.OrderPlaced")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == avro_schema(OrderPlaced)
    unknown = run("export", "kep.orders.Nope")
    assert unknown.exit_code == 2
    assert "no hand-written event model named 'kep.orders.Nope'" in flat(unknown.output)
