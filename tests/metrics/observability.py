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
    "$__rate_interval": "1m",
    "$__range": "1h",
}


def promtool() -> str | None:
    return shutil.which("promtool")


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_exprs() -> list[str]:
    """Every query of every panel, Grafana variables substituted."""
    exprs = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in _GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            exprs.append(expr)
    return exprs


def alert_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        rules.extend(group["rules"])
    return rules


def alert_exprs() -> list[str]:
    return [str(rule["expr"]) for rule in alert_rules()]


def names_in(exprs: list[str]) -> set[str]:
    return {name for expr in exprs for name in _NAME.findall(expr)}
