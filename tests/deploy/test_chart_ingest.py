"""The chart's intake: off by default; enabled, a Deployment and a Service running `kep ingest` as the CLI
accepts it, with the webhook secret from an existing Secret and the probes the intake serves."""

from __future__ import annotations

import pytest

from tests.deploy.chart import SCENARIOS, Rendered, pod_spec
from tests.deploy.kep_cli import check_argv

pytestmark = pytest.mark.unit


def test_the_intake_is_off_unless_enabled(chart: Rendered) -> None:
    for scenario in SCENARIOS:
        names = {d["metadata"]["name"] for d in chart.kinds(scenario, "Deployment")}
        assert ("kep-ingest" in names) == (scenario == "ingest"), scenario


def test_enabled_it_runs_kep_ingest_behind_a_service(chart: Rendered) -> None:
    deployment = chart.one("ingest", "Deployment", "kep-ingest")
    spec = pod_spec(deployment)
    [container] = spec["containers"]
    assert container["args"] == ["ingest", "--host", "0.0.0.0", "--port", "8080"]
    assert check_argv(container["args"]).problems == []
    env = {e["name"]: e for e in container["env"]}
    assert env["KEP_INGEST_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "kep-webhooks",
        "key": "secret",
    }
    assert env["KEP_INGEST_STATUS_STORE"]["value"] == "redis://redis:6379/0"
    assert env["KEP_TOPOLOGY"]["value"] == "/etc/kep/topology/topology.yaml"
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/etc/kep/topology", "/tmp"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert spec["terminationGracePeriodSeconds"] > 20  # above the intake's shutdown bound
    service = chart.one("ingest", "Service", "kep-ingest")
    assert service["spec"]["ports"][0]["port"] == 8080
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
