"""``kep topology`` in-process with typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from typer.testing import CliRunner

from kep.cli.main import app
from kep.schemas.registry import KEP_SCHEMA_DIR
from tests.support.shop import SHOP_SCHEMAS, SHOP_TOPOLOGY
from tests.topology.conftest import TopologyFile

runner = CliRunner(env={"COLUMNS": "200"})


def kep(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.output


@pytest.mark.unit
def test_validate_accepts_the_shop_topology(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEP_SCHEMAS")
    code, output = kep("topology", "validate", "--topology", str(SHOP_TOPOLOGY))
    assert code == 0, output
    assert (
        "valid: 2 topics, 2 groups, 10 retry and dead-letter topics; schema names checked against 3 schema(s) "
        f"in {KEP_SCHEMA_DIR}, {SHOP_SCHEMAS}"
        in output  # kep's own kep.batches.BatchCompleted, and the shop's
    )


@pytest.mark.unit
@pytest.mark.parametrize("command", ["validate", "show", "plan", "apply"])
def test_without_a_topology_every_command_says_so_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.delenv("KEP_TOPOLOGY", raising=False)
    code, output = kep("topology", command, *(["-b", "127.0.0.1:1"] if command in ("plan", "apply") else []))
    assert code == 2, output
    assert "error: no topology: pass --topology FILE or set KEP_TOPOLOGY" in " ".join(output.split())


@pytest.mark.unit
def test_bad_yaml_exits_2_with_the_message_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("topics:\n  - name: orders\n    partitions: [3\n")
    for command in (["validate"], ["show"], ["plan", "-b", "127.0.0.1:1"], ["apply", "-b", "127.0.0.1:1"]):
        code, output = kep("topology", *command, "--topology", str(bad))
        assert code == 2, (command, output)
        assert f"error: {bad}:4: invalid YAML" in output


@pytest.mark.unit
def test_validate_reports_the_path_of_a_bad_value(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "topics:\n  - {name: orders, partitions: 1}\n"
        "groups:\n  - {name: g, topics: [orders], retry: {delays: [1sec]}}\n"
    )
    code, output = kep("topology", "validate", "--topology", str(bad))
    assert code == 2
    assert f"{bad}:4: groups[0].retry.delays[0]: duration '1sec' is not a number with a unit" in output


@pytest.mark.unit
def test_validate_checks_schema_names(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("topics:\n  - {name: orders, partitions: 1, value_schema: kep.orders.Nope}\n")
    code, output = kep("topology", "validate", "--topology", str(bad))
    assert code == 2
    assert "topics[0].value_schema[0]: unknown schema 'kep.orders.Nope'" in output


@pytest.mark.unit
def test_show_lists_derived_retry_and_dead_letter_topics(topology_file: TopologyFile) -> None:
    code, output = kep("topology", "show", "--topology", str(topology_file.path))
    assert code == 0, output
    for name in topology_file.all_names():
        assert name in output
    assert f"{topology_file.payments}.shipping.dlq" not in output
    assert "group billing on " in output and "3 attempts" in output


@pytest.mark.integration
def test_apply_twice_reports_no_changes_the_second_time(topology_file: TopologyFile, kafka: str) -> None:
    path = str(topology_file.path)
    code, output = kep("topology", "plan", "--topology", path, "-b", kafka)
    assert code == 0, output
    assert f"create │ {topology_file.orders}.billing.retry.10s" in output

    code, output = kep("topology", "apply", "--topology", path, "-b", kafka)
    assert code == 0, output
    assert f"done: create {topology_file.orders}.billing.dlq (3 partitions" in output
    assert "applied: 7 created, 0 grown, 0 altered" in output

    for command in ("apply", "plan"):
        code, output = kep("topology", command, "--topology", path, "-b", kafka)
        assert code == 0, output
        assert "no changes" in output
        assert "create" not in output


@pytest.mark.integration
def test_plan_with_a_refused_change_exits_1(topology_file: TopologyFile, kafka: str) -> None:
    path = str(topology_file.path)
    assert kep("topology", "apply", "--topology", path, "-b", kafka)[0] == 0
    topology_file.write(orders_partitions=1)

    code, output = kep("topology", "plan", "--topology", path, "-b", kafka)
    assert code == 1
    assert f"topic {topology_file.orders} has 3 partitions and the topology asks for 1" in output

    code, output = kep("topology", "apply", "--topology", path, "-b", kafka)
    assert code == 1
    assert "error: refusing to apply the plan" in output


@pytest.mark.integration
def test_apply_validates_as_validate_does_and_creates_nothing_for_an_unknown_schema(
    tmp_path: Path, kafka: str
) -> None:
    topic = f"orders-{tmp_path.name[-12:]}".replace("_", "-")
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"topics:\n  - {{name: {topic}, partitions: 1, value_schema: kep.orders.Nope}}\n")
    validated = kep("topology", "validate", "--topology", str(bad))
    for command in ("plan", "apply"):
        code, output = kep("topology", command, "--topology", str(bad), "-b", kafka)
        assert (code, output) == validated, command
    assert "topics[0].value_schema[0]: unknown schema 'kep.orders.Nope'" in validated[1]
    assert topic not in AdminClient({"bootstrap.servers": kafka}).list_topics(timeout=10).topics


def test_plan_and_apply_print_json(topology_file: TopologyFile, kafka: str) -> None:
    path = str(topology_file.path)
    code, output = kep("topology", "plan", "--topology", path, "-b", kafka, "--json")
    assert code == 0, output
    planned = json.loads(output)
    dlq = f"{topology_file.orders}.billing.dlq"
    assert any(c["topic"] == dlq and c["change"].startswith("create") for c in planned["changes"]), planned
    code, output = kep("topology", "apply", "--topology", path, "-b", kafka, "--json")
    assert code == 0, output
    applied = json.loads(output)
    assert f"{topology_file.orders}.billing.dlq" in applied["created"] and applied["refused"] == []
    code, output = kep("topology", "apply", "--topology", path, "-b", kafka, "--json")
    assert json.loads(output)["created"] == []


@pytest.mark.unit
def test_validate_and_show_print_json(topology_file: TopologyFile) -> None:
    code, output = kep("topology", "validate", "--topology", str(topology_file.path), "--json")
    assert code == 0 and json.loads(output)["valid"] is True
    code, output = kep("topology", "show", "--topology", str(topology_file.path), "--json")
    shown = json.loads(output)
    dlq = f"{topology_file.orders}.billing.dlq"
    assert {"name": dlq, "kind": "dlq", "group": "billing", "source": topology_file.orders}.items() <= next(
        t for t in shown["topics"] if t["name"] == dlq
    ).items()
