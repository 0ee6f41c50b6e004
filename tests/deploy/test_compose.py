"""docker-compose.yml is a valid Compose file that starts the stack in order; its side files hold together.

The Compose specification's JSON schema is the copy PyPI check-jsonschema vendors
(check_jsonschema/builtin_schemas/vendor/compose-spec.json, from github.com/compose-spec/compose-spec).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.chart import REPO

pytestmark = pytest.mark.unit

ONE_SHOT = "service_completed_successfully"


def _compose_schema_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads((files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def _kep(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        n: s for n, s in compose["services"].items() if s.get("build", {}).get("dockerfile") == "Dockerfile"
    }


def test_compose_file_satisfies_the_compose_specification(compose: dict[str, Any]) -> None:
    assert _compose_schema_errors(compose) == []


def test_the_specification_check_catches_a_broken_file(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["billing"]["depends_on"]["topology"]["condition"] = "service_finished"
    broken["services"]["billing"]["deploy"]["replica"] = 2
    errors = _compose_schema_errors(broken)
    assert any("service_finished" in e for e in errors) and any("replica" in e for e in errors)


def test_services_start_in_order_on_health_and_completion(compose: dict[str, Any]) -> None:
    services = compose["services"]
    expected = {
        "schema-registry": {"kafka": "service_healthy"},
        "topology": {"kafka": "service_healthy"},
        "producer": {"topology": ONE_SHOT, "schema-registry": "service_healthy"},
        "billing": {"topology": ONE_SHOT, "schema-registry": "service_healthy", "redis": "service_healthy"},
        "lag-exporter": {"topology": ONE_SHOT},
        "console": {"topology": ONE_SHOT, "schema-registry": "service_healthy"},
        "ingest": {"topology": ONE_SHOT, "schema-registry": "service_healthy"},
        "prometheus": {"lag-exporter": "service_healthy"},
        "grafana": {"prometheus": "service_healthy"},
    }
    actual = {
        name: {dep: spec["condition"] for dep, spec in s.get("depends_on", {}).items()}
        for name, s in services.items()
        if s.get("depends_on")
    }
    assert actual == expected
    for name, deps in actual.items():
        for dep, condition in deps.items():
            if condition == "service_healthy":
                assert services[dep]["healthcheck"]["test"][0] == "CMD", (
                    f"{name} waits on {dep}'s healthcheck"
                )
            if condition == ONE_SHOT:
                assert services[dep].get("restart") == "no", f"{dep} is a one-shot {name} waits for"


def test_the_stack_runs_each_kep_role_from_the_one_image(compose: dict[str, Any]) -> None:
    commands = {name: s["command"][:2] for name, s in _kep(compose).items()}
    assert commands == {
        "topology": ["topology", "apply"],
        "producer": ["produce", "orders"],
        "billing": ["run", "shop.billing:app"],
        "lag-exporter": ["lag-exporter", "--metrics-port"],
        "console": ["console", "--host"],
        "ingest": ["ingest", "--host"],
    }
    images = {s["image"] for s in _kep(compose).values()}
    assert len(images) == 1
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka:")
    assert compose["services"]["schema-registry"]["image"].startswith("confluentinc/cp-schema-registry:")


def test_two_billing_members_share_the_group_without_clashing_host_ports(compose: dict[str, Any]) -> None:
    billing = compose["services"]["billing"]
    assert billing["deploy"]["replicas"] == 2
    assert "ports" not in billing and "container_name" not in billing


def test_kep_containers_match_the_charts_hardening(compose: dict[str, Any]) -> None:
    for name, service in _kep(compose).items():
        assert service["user"] == "10001:10001", name
        assert service["read_only"] is True, name
        assert {"/tmp", "/var/lib/kep"} <= set(service["tmpfs"]), name
        assert service["cap_drop"] == ["ALL"], name


def test_the_replicas_of_a_group_share_an_idempotency_store_compose_starts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    workers = {n: s for n, s in _kep(compose).items() if s["command"][0] == "run"}
    assert workers
    for name, worker in workers.items():
        store = worker["environment"].get("KEP_IDEMPOTENCY_STORE", "sqlite:////var/lib/kep/idempotency.db")
        if worker.get("deploy", {}).get("replicas", 1) == 1:
            continue
        scheme, _, rest = store.partition("://")
        assert scheme in ("redis", "postgresql"), f"{name}: replicas on a per-container store {store}"
        host = rest.split("@")[-1].split("/")[0].split(":")[0]
        assert worker["depends_on"][host]["condition"] == "service_healthy", f"{name} waits for {host}"
        assert services[host]["healthcheck"]["test"][0] == "CMD"
        # Keys outlive a restart of the store: its data is on a named volume.
        assert any(v.split(":")[0] in compose["volumes"] for v in services[host]["volumes"]), host


def test_stopping_a_worker_waits_longer_than_its_drain_deadline(compose: dict[str, Any]) -> None:
    billing = compose["services"]["billing"]
    grace = billing["stop_grace_period"]
    assert grace.endswith("s")
    assert float(grace[:-1]) > float(billing["environment"]["KEP_DRAIN_TIMEOUT_S"])


def test_bind_mounts_exist_in_the_repository(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name}: {source}"


def test_the_kep_containers_run_the_mounted_shop_example(compose: dict[str, Any]) -> None:
    for name, service in _kep(compose).items():
        target = _mount_target(service, "./examples/shop")
        assert service["working_dir"] == target, name
        environment = service["environment"]
        assert environment["PYTHONPATH"] == target, name
        topology = environment["KEP_TOPOLOGY"]
        assert topology.startswith(f"{target}/"), name
        assert (REPO / "examples" / "shop" / topology.removeprefix(f"{target}/")).is_file(), name


def _mount_target(service: dict[str, Any], source: str) -> str:
    volumes: list[str] = service["volumes"]
    (target,) = [v.split(":")[1] for v in volumes if v.split(":")[0] == source]
    return target


def test_prometheus_loads_the_kep_rules_and_scrapes_every_kep_port(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    rules_target = _mount_target(prometheus, "./consumers/observability/alerts.yml")
    assert any(Path(rules_target).match(pattern) for pattern in config["rule_files"])
    assert _mount_target(prometheus, "./deploy/prometheus/prometheus.yml") == "/etc/prometheus/prometheus.yml"
    targets = set()
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            targets.update(static["targets"])
        for dns in job.get("dns_sd_configs", []):
            targets.update(f"{name}:{dns['port']}" for name in dns["names"])
    assert targets == {"lag-exporter:9401", "billing:9400"}


def test_prometheus_config_and_rules_pass_promtool(compose: dict[str, Any], tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (scripts/install-tools.sh installs it)")
    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    config["rule_files"] = [str(REPO / "consumers/observability/alerts.yml")]  # the file compose mounts there
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_grafana_provisions_the_datasource_and_the_kep_dashboard(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    provisioning = REPO / "deploy/grafana/provisioning"
    assert _mount_target(grafana, "./deploy/grafana/provisioning") == "/etc/grafana/provisioning"
    (datasource,) = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())["datasources"]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    assert datasource["isDefault"] is True
    (provider,) = yaml.safe_load((provisioning / "dashboards/kep.yml").read_text())["providers"]
    dashboard_target = _mount_target(grafana, "./consumers/observability/dashboard.json")
    assert Path(dashboard_target).parent == Path(provider["options"]["path"])
    dashboard = json.loads((REPO / "consumers/observability/dashboard.json").read_text())
    # The dashboard picks its Prometheus through a datasource variable, which the provisioned default fills.
    assert any(
        v.get("type") == "datasource" and v.get("query") == "prometheus"
        for v in dashboard["templating"]["list"]
    )
