"""The shipped Prometheus rules and Grafana dashboard: valid for promtool, complete, and tested."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.metrics.observability import (
    ALERT_TESTS,
    ALERTS,
    alert_rules,
    dashboard,
    dashboard_exprs,
    promtool,
)

pytestmark = pytest.mark.unit

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
        for key in ("summary", "description", "runbook"):
            assert annotations.get(key), f"{name}: no {key} annotation"
        assert "docs/metrics.md#" in annotations["runbook"], f"{name}: the runbook does not point to the doc"


def test_every_runbook_anchor_is_a_section_of_the_metrics_doc() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()
    headings = {line.lstrip("#").strip().lower() for line in doc.splitlines() if line.startswith("#")}
    for rule in alert_rules():
        anchor = rule["annotations"]["runbook"].rsplit("docs/metrics.md#", 1)[1].strip()
        assert anchor in headings, f"{rule['alert']}: no '### {anchor}' heading in docs/metrics.md"


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
