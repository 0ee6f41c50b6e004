"""The shipped Prometheus rules and Grafana dashboard: valid for promtool, complete, and tested."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from kep.cli.main import app as kep_app
from tests.metrics.observability import (
    ALERT_TESTS,
    ALERTS,
    alert_rules,
    dashboard,
    dashboard_exprs,
    dashboard_targets,
    promtool,
    unit_of,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
ROUTING_LABELS = {"namespace", "cluster", "job"}

needs_promtool = pytest.mark.skipif(
    promtool() is None,
    reason="promtool not installed (Debian package 'prometheus'; `make tools` installs it)",
)

REQUIRED_ALERTS = {
    "KepConsumerLagSecondsHigh",  # lag seconds high
    "KepConsumerLagGrowing",  # lag growing
    "KepPartitionStalled",  # partition stalled
    "KepGroupWithoutConsumers",  # group without consumers
    "KepDeadLetterReceiving",  # DLQ receiving
    "KepRebalanceStorm",  # rebalance storm
    "KepHandlerFailureRatioHigh",  # failure ratio
    "KepLagExporterStale",  # exporter stale
}


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a document's headings: lower case, punctuation dropped, spaces as '-'."""
    anchors = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return anchors


def cli_command_path(words: list[str]) -> list[str]:
    """The subcommand names at the start of ``words`` (``["dlq", "show", "TOPIC"]`` -> ``["dlq", "show"]``);
    fails on a name a command group does not have (``kep dlq inspect``)."""
    command: Any = typer.main.get_command(kep_app)
    path: list[str] = []
    for word in words:
        subcommands = getattr(command, "commands", None)  # a command group (typer vendors its own click)
        if subcommands is None or word.startswith("-"):
            break
        sub = subcommands.get(word)
        assert sub is not None, (
            f"`kep {' '.join([*path, word])}`: no such command (has {sorted(subcommands)})"
        )
        command = sub
        path.append(word)
    assert path, f"`kep {' '.join(words)}` names no subcommand"
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = promtool()
    assert tool is not None
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60, check=False)


@needs_promtool
def test_promtool_accepts_the_alert_rules() -> None:
    result = run_promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    result = run_promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    rules = [{"record": f"kep:dashboard_query:{i}", "expr": expr} for i, expr in enumerate(dashboard_exprs())]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_required_alerts_exist_with_for_severity_and_annotations() -> None:
    rules = alert_rules()
    assert REQUIRED_ALERTS <= {rule["alert"] for rule in rules}
    for rule in rules:
        name = rule["alert"]
        assert rule.get("for"), f"{name}: no 'for:'"
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, name
        assert all(annotations.values()), name


def test_every_runbook_url_is_a_section_of_a_doc_that_exists() -> None:
    for rule in alert_rules():
        path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        doc = REPO / path
        assert path.startswith("docs/") and doc.is_file(), f"{rule['alert']}: {path} does not exist"
        assert anchor in heading_anchors(doc.read_text()), f"{rule['alert']}: no section #{anchor} in {path}"


def test_every_aggregation_keeps_the_labels_alerts_are_routed_by() -> None:
    for rule in alert_rules():
        expr = str(rule["expr"])
        for labels in re.findall(r"\bby \(([^)]*)\)", expr):
            kept = {label.strip() for label in labels.split(",")}
            assert ROUTING_LABELS <= kept, f"{rule['alert']}: `by ({labels})` drops {ROUTING_LABELS - kept}"
        for labels in re.findall(r"\bwithout \(([^)]*)\)", expr):
            dropped = {label.strip() for label in labels.split(",")}
            assert not dropped & ROUTING_LABELS, f"{rule['alert']}: `without ({labels})` drops routing labels"
        assert "by (" in expr or "without (" in expr, f"{rule['alert']}: aggregate explicitly"


def test_every_command_a_runbook_names_exists() -> None:
    """Each `kep ...` in an alert's annotations or in the runbooks of docs/metrics.md: its --help runs."""
    texts = [value for rule in alert_rules() for value in rule["annotations"].values()]
    doc = (REPO / "docs" / "metrics.md").read_text()
    texts.append(doc[doc.index("### Runbooks") :])
    commands = {match for text in texts for match in re.findall(r"`(kep [^`]+)`", text)}
    assert {"kep dlq ls", "kep dlq show", "kep dlq replay", "kep lag"} <= commands
    for command in sorted(commands):
        path = cli_command_path(command.split()[1:])
        result = CliRunner().invoke(kep_app, [*path, "--help"])
        assert result.exit_code == 0, f"`{command}`: {result.output}"


def test_a_command_that_does_not_exist_is_caught() -> None:
    with pytest.raises(AssertionError, match="kep dlq inspect"):
        cli_command_path(["dlq", "inspect"])


def test_the_dashboard_has_datasource_and_group_variables_and_the_required_panels() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    assert variables["group"]["multi"] and variables["group"]["includeAll"]
    panels = [p for p in board["panels"] if p["type"] != "row"]
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    for needle in (
        "kep_group_lag_messages_sum",  # lag in messages
        "kep_group_lag_seconds",  # lag in seconds
        "topk(10, kep_group_lag_messages",  # top partitions
        "rate(kep_messages_processed_total",  # throughput
        "sum by (group, exception) (rate(kep_messages_failed_total",  # failures by exception type
        'topic=~".+\\\\.retry\\\\..+"',  # retry-tier backlog
        "kep_messages_dead_lettered_total",  # DLQ rate
        "\\\\.dlq",  # DLQ depth
        "kep_consumer_rebalances_total",  # rebalances
        "histogram_quantile(0.5, sum by (le, group, topic) (rate(kep_handler_duration_seconds_bucket",
        "histogram_quantile(0.99, sum by (le, group, topic) (rate(kep_handler_duration_seconds_bucket",
    ):
        assert needle in exprs, needle
    assert "topk(10, kep_group_lag_messages{" in exprs


def test_the_dashboard_filters_every_query_by_cluster_namespace_and_group() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert list(variables) == ["datasource", "cluster", "namespace", "group"]
    for name in ("cluster", "namespace"):
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*", name
    group = variables["group"]
    assert "allValue" not in group, "All must mean the listed groups, which leave out replay-progress groups"
    regex = re.compile(group["regex"].strip("/"))
    assert regex.match("billing") and not regex.match("kep-dlq-replay.orders.billing.dlq")
    for panel, target, _expr in dashboard_targets():
        raw = target["expr"]
        if "$group" in raw or "${group" in raw:
            selectors = len(re.findall(r"[a-z_]\{", raw))  # metric{...}, not ${group:regex}
            filtered = raw.count('cluster=~"$cluster"')
            assert selectors == filtered == raw.count('namespace=~"$namespace"'), panel["title"]


def _expected_unit(expr: str) -> set[str]:
    if (
        "histogram_quantile" in expr
        or "lag_seconds" in expr
        or "time() -" in expr
        or "duration_seconds" in expr
    ):
        return {"s"}
    if "rate(" in expr and "increase(" not in expr:
        return {"ops"}
    return {"short", "none"}


def test_every_dashboard_query_is_shown_in_its_unit() -> None:
    """Seconds for durations and lag in seconds, per second for rates, plain numbers for counts (a count of
    failed commits is not seconds)."""
    for panel, target, expr in dashboard_targets():
        unit = unit_of(panel, target)
        assert unit in _expected_unit(expr), f"{panel['title']} {target['refId']}: {unit} for {expr}"


def test_lag_panels_leave_out_retry_and_dead_letter_topics_alike() -> None:
    by_title = {p["title"]: p for p in dashboard()["panels"]}
    messages = by_title["Lag (messages) by group and topic"]["targets"][0]["expr"]
    seconds = by_title["Lag (seconds) by group and topic"]["targets"][0]["expr"]
    excluded = 'topic!~".+\\\\.retry\\\\..+|.+\\\\.dlq"'
    assert excluded in messages and excluded in seconds
