"""Reading the shipped dashboard and alert rules: their PromQL expressions and the metric names in them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

OBSERVABILITY = Path(__file__).resolve().parents[2] / "consumers" / "observability"
DASHBOARD = OBSERVABILITY / "dashboard.json"
ALERTS = OBSERVABILITY / "alerts.yml"
ALERT_TESTS = OBSERVABILITY / "alerts.test.yml"

_NAME = re.compile(r"\bkep_[a-z0-9_]+\b")
# Grafana's variables, replaced by values that make each expression plain PromQL.
_GRAFANA_VARIABLES = {
    "${group:regex}": ".*",
    "$group": ".*",
    "$cluster": ".*",
    "$namespace": ".*",
    "$__rate_interval": "1m",
    "$__range": "1h",
}


def promtool() -> str | None:
    return shutil.which("promtool")


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_targets(**values: str) -> list[tuple[dict[str, Any], dict[str, Any], str]]:
    """``(panel, target, expr)`` for every query of every panel, Grafana variables substituted: ``values``
    (e.g. ``group="(billing)"``, ``__rate_interval="2m"``) first, then plain defaults (every group, 1m, 1h)."""
    out = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in values.items():
                expr = expr.replace(f"${{{name}:regex}}", value).replace(f"${name}", value)
            for variable, value in _GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            out.append((panel, target, expr))
    return out


def dashboard_exprs() -> list[str]:
    """Every query of every panel, Grafana variables substituted."""
    return [expr for _panel, _target, expr in dashboard_targets()]


def unit_of(panel: dict[str, Any], target: dict[str, Any]) -> str | None:
    """The unit Grafana shows ``target`` in: an override for its refId, else the panel's default."""
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        matcher = override["matcher"]
        if matcher["id"] == "byFrameRefID" and matcher["options"] == target["refId"]:
            for prop in override["properties"]:
                if prop["id"] == "unit":
                    return str(prop["value"])
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
    return None if unit is None else str(unit)


def alert_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        rules.extend(group["rules"])
    return rules


def alert_exprs() -> list[str]:
    return [str(rule["expr"]) for rule in alert_rules()]


def names_in(exprs: list[str]) -> set[str]:
    return {name for expr in exprs for name in _NAME.findall(expr)}
