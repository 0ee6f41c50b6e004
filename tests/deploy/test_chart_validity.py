"""The chart is valid by Helm's own linter and renderer, and what it renders is valid Kubernetes."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
import yaml

from kep.consumers.settings import ConsumerSettings
from tests.deploy.chart import CHART, SCENARIOS, Rendered
from tests.deploy.kube_schemas import CRD_SCHEMAS, manifest_errors, shipped_versions

pytestmark = pytest.mark.unit

WARNING = 2
# Settings the chart sets itself (env, arguments, mounts); values.schema.json keeps them out of worker.config.
CHART_MANAGED_SETTINGS = {
    "drain_timeout_s",
    "processes",
    "metrics_port",
    "metrics_enabled",
    "topology",
    "group_instance_id",
    "group",
    "idempotency_store",
    "log_format",
    "schema_registry_url",
}


def _min_kube_version() -> tuple[int, int]:
    constraint = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    match = re.match(r">=\s*(\d+)\.(\d+)", constraint)
    assert match, f"Chart.yaml kubeVersion {constraint!r} has no lower bound"
    return int(match[1]), int(match[2])


def test_the_scenarios_named_in_the_chart_contract_exist() -> None:
    assert {"default", "keda", "hpa", "static-membership", "sasl-tls", "minimal"} <= set(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_passes_helm_lint_strict_and_renders(chart: Rendered, scenario: str) -> None:
    findings = [
        f"{m['path']}: {m['error'].strip()}" for m in chart.lint(scenario) if m["severity"] >= WARNING
    ]
    assert findings == [], f"helm lint --strict, scenario {scenario}"
    assert chart.error(scenario) is None
    assert chart.docs(scenario), f"scenario {scenario} rendered nothing"
    assert chart.report["helm"].startswith("v4."), chart.report["helm"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_rendered_objects_are_valid_for_the_oldest_and_newest_kubernetes(
    chart: Rendered, scenario: str
) -> None:
    oldest = _min_kube_version()
    assert oldest in shipped_versions(), f"no schemas for Kubernetes {oldest}, the chart's minimum"
    problems = [
        f"{doc['kind']}/{doc['metadata']['name']} (Kubernetes {version[0]}.{version[1]}): {error}"
        for version in (oldest, shipped_versions()[-1])
        for doc in chart.docs(scenario)
        for error in manifest_errors(doc, version)
    ]
    assert problems == []


def test_the_validators_reject_what_the_api_server_would(chart: Rendered) -> None:
    """The schema checks are not vacuous: an unknown field and a missing required field are caught."""
    deployment = chart.one("default", "Deployment", "kep-billing")
    deployment["spec"]["replica"] = 2
    assert any("replica" in e for e in manifest_errors(deployment, _min_kube_version()))
    scaled = chart.one("keda", "ScaledObject", "kep-billing")
    del scaled["spec"]["scaleTargetRef"]
    scaled["spec"]["triggers"][0]["metadata"]["threshold"] = 500
    errors = manifest_errors(scaled, _min_kube_version())
    assert any("scaleTargetRef" in e for e in errors) and any("500" in e for e in errors)


def test_every_custom_resource_kind_rendered_has_a_structural_schema(chart: Rendered) -> None:
    builtin = ("v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2")
    kinds = {
        (d["apiVersion"], d["kind"])
        for s in SCENARIOS
        for d in chart.docs(s)
        if d["apiVersion"] not in builtin
    }
    assert kinds == set(CRD_SCHEMAS)


def _values_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return schema


def test_values_yaml_and_every_scenario_satisfy_the_values_schema() -> None:
    schema = _values_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    for path in [CHART / "values.yaml", *sorted((CHART / "ci").glob("*-values.yaml"))]:
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()) or {})]
        assert errors == [], path.name


def test_values_schema_rejects_unknown_keys_at_every_level() -> None:
    def walk(node: dict[str, Any], where: str) -> list[str]:
        missing = []
        if (
            node.get("type") == "object"
            and "properties" in node
            and node.get("additionalProperties") is not False
        ):
            missing.append(where or "<root>")
        for key, child in node.get("properties", {}).items():
            if isinstance(child, dict):
                missing += walk(child, f"{where}.{key}")
                missing += walk(child.get("items", {}), f"{where}.{key}[]")
        return missing

    schema = _values_schema()
    assert walk(schema, "") + walk(schema["definitions"]["workerConfig"], "workerConfig") == []


def test_worker_config_accepts_exactly_the_consumer_settings_the_chart_does_not_set() -> None:
    """`worker.config` becomes `kep run --config`: its keys track ConsumerSettings as the code changes."""
    accepted = set(_values_schema()["definitions"]["workerConfig"]["properties"])
    fields = set(ConsumerSettings.model_fields)
    assert CHART_MANAGED_SETTINGS <= fields, f"gone from ConsumerSettings: {CHART_MANAGED_SETTINGS - fields}"
    assert accepted == fields - CHART_MANAGED_SETTINGS


def test_helm_rejects_unknown_values_and_chart_managed_settings(chart: Rendered) -> None:
    unknown = chart.error("unknown-key")
    assert unknown and "replica" in unknown and "additional properties" in unknown
    managed = chart.error("config-sets-managed-key")
    assert managed and "drain_timeout_s" in managed
