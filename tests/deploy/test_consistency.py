"""The chart, the compose stack and the image agree with the code: commands, options, settings, ports, paths,
metric names and the embedded copies of the alert rules and dashboard."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from kep.consumers.lag import LAG_METRIC_NAMES
from kep.consumers.metrics import Health, MetricsServer
from kep.consumers.metrics.names import METRIC_NAMES
from kep.consumers.settings import ConsumerSettings
from tests.deploy import dockerfile
from tests.deploy.chart import CHART, REPO, SCENARIOS, Rendered, containers
from tests.deploy.kep_cli import SETTINGS_ENV, check_argv, option_default, option_envvars, settings_env_names

pytestmark = pytest.mark.unit

EMBEDDED = {
    "files/alerts.yml": "consumers/observability/alerts.yml",
    "files/dashboard.json": "consumers/observability/dashboard.json",
}


def _kep_containers(chart: Rendered) -> list[tuple[str, dict[str, Any]]]:
    return [
        (scenario, container)
        for scenario in SCENARIOS
        for _workload, container in containers(chart.docs(scenario))
        if container["image"].split("@")[0].rsplit(":", 1)[0] in ("kep", "kep-shop")  # kep, or FROM kep
    ]


def _compose_kep_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: s
        for name, s in compose["services"].items()
        if s.get("build", {}).get("dockerfile") == "Dockerfile"
    }


def _compose_argv(service: dict[str, Any]) -> list[str]:
    return [arg.replace("$$", "$") for arg in service["command"]]  # compose escapes $ as $$


def _invocations(chart: Rendered, compose: dict[str, Any]) -> list[tuple[str, list[str]]]:
    found = [(f"chart {scenario}: {c['name']}", c["args"]) for scenario, c in _kep_containers(chart)]
    found += [(f"compose {name}", _compose_argv(s)) for name, s in _compose_kep_services(compose).items()]
    return found


def test_every_kep_command_the_chart_and_compose_run_is_accepted_by_the_cli(
    chart: Rendered, compose: dict[str, Any]
) -> None:
    invocations = _invocations(chart, compose)
    assert {tuple(argv[:1]) for _where, argv in invocations} >= {
        ("run",),
        ("lag-exporter",),
        ("topology",),
        ("produce",),
    }
    problems = [f"{where}: {p}" for where, argv in invocations for p in check_argv(argv).problems]
    assert problems == []


def test_the_cli_check_catches_unknown_commands_options_and_bad_values() -> None:
    assert check_argv(["run", "shop.billing:app", "--metrics-port", "9400"]).problems == []
    assert check_argv(["run", "shop.billing:app", "--no-such-option"]).problems
    assert check_argv(["run", "shop.billing:app", "--metrics-port", "nine"]).problems
    assert check_argv(["topology", "aply"]).problems
    assert check_argv(["run"]).problems


def test_every_handler_the_chart_and_compose_run_is_an_importable_app(
    chart: Rendered, compose: dict[str, Any]
) -> None:
    targets = {argv[1] for _where, argv in _invocations(chart, compose) if argv[0] == "run"}
    assert "shop.billing:app" in targets
    for target in sorted(targets):
        module, _, attribute = target.partition(":")
        assert getattr(importlib.import_module(module), attribute, None) is not None, target


def _env_names(chart: Rendered, compose: dict[str, Any], image: dockerfile.Stage) -> dict[str, set[str]]:
    """KEP_* variable names each place sets, keyed by where, with the CLI command it runs."""
    found: dict[str, set[str]] = {}
    for scenario, container in _kep_containers(chart):
        key = f"chart {scenario} {container['name']}|{' '.join(container['args'][:2])}"
        found[key] = {e["name"] for e in container.get("env", []) if e["name"].startswith("KEP_")}
    for name, service in _compose_kep_services(compose).items():
        env = service.get("environment", {})
        found[f"compose {name}|{' '.join(_compose_argv(service)[:2])}"] = {
            k for k in env if k.startswith("KEP_")
        }
    found["Dockerfile ENV|"] = {k for k in image.env() if k.startswith("KEP_")}
    return found


def test_every_kep_variable_set_is_a_settings_field_or_an_option_of_the_command_run(
    chart: Rendered, compose: dict[str, Any], image: dockerfile.Stage
) -> None:
    assert {"KEP_KAFKA_BOOTSTRAP_SERVERS", "KEP_DRAIN_TIMEOUT_S", "KEP_GROUP_INSTANCE_ID"} <= SETTINGS_ENV
    unknown = []
    for where, names in _env_names(chart, compose, image).items():
        place, _, command = where.partition("|")
        accepted = SETTINGS_ENV | (check_argv(command.split()).envvars if command else set())
        unknown += [f"{place}: {name}" for name in sorted(names - accepted)]
    assert unknown == []


def test_every_registry_url_option_reads_the_variable_the_worker_reads(
    chart: Rendered, compose: dict[str, Any]
) -> None:
    (worker,) = {n for n in settings_env_names(ConsumerSettings) if n.endswith("_SCHEMA_REGISTRY_URL")}
    options = option_envvars("--registry-url")
    assert {"produce", "dlq show"} <= options.keys()
    assert {command: envvars for command, envvars in options.items() if envvars != {worker}} == {}
    chart_env = {e["name"] for _s, c in _kep_containers(chart) for e in c.get("env", [])}
    compose_env = {name for s in _compose_kep_services(compose).values() for name in s.get("environment", {})}
    assert worker in chart_env and worker in compose_env


def test_ports_match_the_code_defaults(
    chart: Rendered, compose: dict[str, Any], image: dockerfile.Stage
) -> None:
    worker_port = ConsumerSettings.model_fields["metrics_port"].default
    exporter_port = option_default(["lag-exporter"], "port")
    assert (worker_port, exporter_port) == (9400, 9401)
    assert set((image.last("EXPOSE") or "").split()) == {str(worker_port), str(exporter_port)}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["lagExporter"]["port"] == exporter_port
    for _scenario, container in _kep_containers(chart):
        ports = {p["containerPort"] for p in container.get("ports", [])}
        argv = check_argv(container["args"])
        if argv.path == ["run"]:
            assert ports == {argv.params["metrics_port"]} == {worker_port}
        if argv.path == ["lag-exporter"]:
            assert ports == {argv.params["port"]} == {exporter_port}
    for service in _compose_kep_services(compose).values():
        argv = check_argv(_compose_argv(service))
        port = {"run": "metrics_port", "lag-exporter": "port"}.get(argv.path[0])
        if port:
            assert argv.params[port] in (worker_port, exporter_port)
            assert f"127.0.0.1:{argv.params[port]}/" in " ".join(service["healthcheck"]["test"])


def test_probe_paths_are_served_by_the_metrics_server(chart: Rendered, compose: dict[str, Any]) -> None:
    paths = {"/metrics"}
    for _scenario, container in _kep_containers(chart):
        for probe in ("livenessProbe", "readinessProbe"):
            if probe in container:
                paths.add(container[probe]["httpGet"]["path"])
    for service in _compose_kep_services(compose).values():
        paths.update(
            re.findall(r"127\.0\.0\.1:\d+(/\w+)", " ".join(service.get("healthcheck", {}).get("test", [])))
        )
    assert paths == {"/metrics", "/healthz", "/readyz"}
    server = MetricsServer(CollectorRegistry(), Health(), port=0)
    for path in sorted(paths):
        assert server.dispatch(path, path)[0] != 404, path
    assert server.dispatch("/nope", "/nope")[0] == 404


def test_autoscaling_reads_metrics_the_lag_exporter_exports(chart: Rendered) -> None:
    used: set[str] = set()
    for scenario in SCENARIOS:
        for scaled in chart.kinds(scenario, "ScaledObject"):
            for trigger in scaled["spec"]["triggers"]:
                used.update(re.findall(r"\bkep_\w+", trigger["metadata"].get("query", "")))
        for hpa in chart.kinds(scenario, "HorizontalPodAutoscaler"):
            used.update(
                m["external"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "External"
            )
    assert used == {"kep_group_lag_messages"}
    assert used <= LAG_METRIC_NAMES
    assert not used & METRIC_NAMES, "autoscaling must read the exporter, which reports even with no worker up"


@pytest.mark.parametrize(("copy", "source"), sorted(EMBEDDED.items()))
def test_the_chart_embeds_the_current_source_file(copy: str, source: str) -> None:
    assert (CHART / copy).read_bytes() == (REPO / source).read_bytes(), (
        f"helm/kep/{copy} differs from {source}: run scripts/sync-chart-files.sh"
    )


def test_the_rendered_rules_and_dashboard_are_the_source_files(chart: Rendered) -> None:
    rule = chart.one("keda", "PrometheusRule", "kep")
    source = yaml.safe_load((REPO / EMBEDDED["files/alerts.yml"]).read_text())
    assert rule["spec"]["groups"] == source["groups"]
    dashboard = chart.one("default", "ConfigMap", "kep-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["data"]["kep.json"] == (REPO / EMBEDDED["files/dashboard.json"]).read_text()
    json.loads(dashboard["data"]["kep.json"])


def _promtool_check_rules(groups: list[dict[str, Any]], path: Path) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (scripts/install-tools.sh installs it)")
    path.write_text(yaml.safe_dump({"groups": groups}))
    command = [promtool, "check", "rules", str(path)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_the_rendered_prometheus_rule_passes_promtool(chart: Rendered, tmp_path: Path) -> None:
    groups = chart.one("keda", "PrometheusRule", "kep")["spec"]["groups"]
    proc = _promtool_check_rules(groups, tmp_path / "rules.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_keda_lag_query_is_valid_promql(chart: Rendered, tmp_path: Path) -> None:
    """promtool parses each rendered query as the expression of a recording rule."""
    queries = [
        t["metadata"]["query"]
        for case in ("keda", "two-groups")
        for scaled in chart.kinds(case, "ScaledObject")
        for t in scaled["spec"]["triggers"]
        if t["type"] == "prometheus"
    ]
    assert queries
    rules = [{"record": f"kep:keda_query_{i}", "expr": q} for i, q in enumerate(queries)]
    proc = _promtool_check_rules([{"name": "keda", "rules": rules}], tmp_path / "queries.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    broken = [{"name": "broken", "rules": [{"record": "kep:broken", "expr": "sum(("}]}]
    assert _promtool_check_rules(broken, tmp_path / "broken.yml").returncode != 0
