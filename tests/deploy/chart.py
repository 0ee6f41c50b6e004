"""Helm on the chart, once per session: helm-python-sdk (Helm v4's Go SDK) in .kep/helm-venv, in a subprocess.

``scripts/helm-venv.sh`` creates the venv; ``scripts/helm_chart.py`` lints and renders every ``ci/`` scenario
plus the extra cases below and writes the manifests and a JSON report, which ``Rendered`` reads.
"""

from __future__ import annotations

import copy
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "kep"
SCENARIOS = sorted(p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml"))
NO_PYTHON = 3  # scripts/helm-venv.sh: no Python >= 3.10 to run helm-python-sdk
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: The service every scenario renders over: the shop example (its image, topology file and billing group).
BASE_VALUES = REPO / "examples" / "shop" / "helm-values.yaml"
_BILLING = {"name": "billing", "handler": "shop.billing:app"}

# Values the tests render besides the ci/ scenarios: the render must fail, or show one behaviour.
EXTRA_CASES: dict[str, dict[str, Any]] = {
    "both-autoscalers": {
        "consumerGroups": [{**_BILLING, "autoscaling": {"keda": {"enabled": True}, "hpa": {"enabled": True}}}]
    },
    "grace-below-drain": {"consumerGroups": [{**_BILLING, "terminationGracePeriodSeconds": 20}]},
    "grace-equal-drain": {"worker": {"drainTimeoutSeconds": 30, "terminationGracePeriodSeconds": 30}},
    "grace-pinned": {"consumerGroups": [{**_BILLING, "terminationGracePeriodSeconds": 90}]},
    "processes-auto": {"consumerGroups": [{**_BILLING, "processes": "auto"}]},
    "hpa-without-metric": {
        "consumerGroups": [{**_BILLING, "autoscaling": {"hpa": {"enabled": True, "lagPerReplica": 0}}}]
    },
    "sasl-without-secret": {"kafka": {"sasl": {"enabled": True}}},
    "duplicate-groups": {"consumerGroups": [_BILLING, _BILLING]},
    "unknown-key": {"worker": {"replica": 3}},
    "config-sets-managed-key": {"worker": {"config": {"drain_timeout_s": 5}}},
    # The topology as YAML in the values instead of a file in the image: the chart keeps it in ConfigMaps.
    "topology-changed": {
        "topology": {"file": "", "content": "topics:\n  - name: orders\n    partitions: 12\n"}
    },
    "topology-file-moved": {"topology": {"file": "/srv/shop/other-topology.yaml"}},
    "topology-both": {"topology": {"content": "topics: []\n"}},
    "no-topology": {"topology": {"file": ""}},
    # Two groups: billing on KEDA's prometheus trigger without a PodDisruptionBudget, shipping on KEDA's kafka
    # trigger (no credentials) with the default budget.
    "two-groups": {
        "consumerGroups": [
            {
                **_BILLING,
                "podDisruptionBudget": {"enabled": False},
                "autoscaling": {"keda": {"enabled": True}},
            },
            {
                "name": "shipping",
                "handler": "shop.shipping:app",
                "autoscaling": {
                    "keda": {
                        "enabled": True,
                        "trigger": "kafka",
                        "minReplicaCount": 0,
                        "kafka": {"topic": "orders"},
                    }
                },
            },
        ]
    },
    "group-id-override": {"consumerGroups": [{**_BILLING, "groupId": "billing-eu"}]},
    # The outbox relay's settings: worker defaults, a group turning the relay off; a delivery kep has not.
    "outbox": {
        "worker": {
            "idempotencyStore": "postgresql://kep@postgres/kep",
            "outbox": {"table": "payments_outbox", "delivery": "at-least-once", "batchSize": 200},
        },
        "consumerGroups": [
            _BILLING,
            {"name": "shipping", "handler": "shop.shipping:app", "outbox": {"relay": False}},
        ],
    },
    "outbox-bad-delivery": {"worker": {"outbox": {"delivery": "twice"}}},
    "sqlite-two-replicas": {"worker": {"idempotencyStore": "sqlite:////var/lib/kep/idempotency.db"}},
    "memory-two-replicas": {"consumerGroups": [{**_BILLING, "idempotencyStore": "memory://"}]},
    "sqlite-keda": {
        "consumerGroups": [
            {
                **_BILLING,
                "replicas": 1,
                "idempotencyStore": "sqlite:////var/lib/kep/idempotency.db",
                "autoscaling": {"keda": {"enabled": True}},
            }
        ]
    },
    "sqlite-hpa": {
        "consumerGroups": [
            {
                **_BILLING,
                "replicas": 1,
                "idempotencyStore": "sqlite:////var/lib/kep/idempotency.db",
                "autoscaling": {"hpa": {"enabled": True}},
            }
        ]
    },
    "sqlite-in-env-two-replicas": {
        "worker": {"env": [{"name": "KEP_IDEMPOTENCY_STORE", "value": "sqlite:////var/lib/kep/k.db"}]}
    },
    "sqlite-keda-one-max": {
        "consumerGroups": [
            {
                **_BILLING,
                "idempotencyStore": "sqlite:////var/lib/kep/idempotency.db",
                "autoscaling": {"keda": {"enabled": True, "maxReplicaCount": 1}},
            }
        ]
    },
    "rule-overrides": {
        "prometheusRule": {
            "enabled": True,
            "runbookBaseUrl": "https://git.example.com/kep/blob/v0.1.0/",
            "alerts": {
                "KepConsumerLagSecondsHigh": {"threshold": 600, "for": "20m"},
                "KepHandlerFailureRatioHigh": {"threshold": 0.1},
                "KepPartitionStalled": {"severity": "page"},
                "KepRebalanceStorm": {"enabled": False},
            },
        }
    },
    "rule-threshold-without-comparison": {
        "prometheusRule": {"enabled": True, "alerts": {"KepGroupWithoutConsumers": {"threshold": 2}}}
    },
    "rule-unknown-alert": {"prometheusRule": {"enabled": True, "alerts": {"KepNoSuchAlert": {"for": "5m"}}}},
}


class HelmUnavailable(Exception):
    """No interpreter can run helm-python-sdk here."""


def helm_python() -> Path:
    """The python of .kep/helm-venv, creating the venv when needed."""
    proc = subprocess.run(
        [str(REPO / "scripts" / "helm-venv.sh")], capture_output=True, text=True, timeout=600, check=False
    )
    if proc.returncode == NO_PYTHON:
        raise HelmUnavailable(proc.stderr.strip())
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/helm-venv.sh exited {proc.returncode}:\n{proc.stderr}")
    return Path(proc.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class Rendered:
    """What scripts/helm_chart.py wrote: per case, Helm's lint findings, the render error or the manifests."""

    out: Path
    report: dict[str, Any]
    _parsed: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)

    def error(self, case: str) -> str | None:
        error: str | None = self.report["cases"][case]["error"]
        return error

    def lint(self, case: str) -> list[dict[str, Any]]:
        findings: list[dict[str, Any]] = self.report["cases"][case]["lint"]
        return findings

    def docs(self, case: str) -> list[dict[str, Any]]:
        """The rendered objects of a case (a fresh copy: tests may change it)."""
        error = self.error(case)
        assert error is None, f"case {case!r} did not render: {error}"
        if case not in self._parsed:
            text = (self.out / f"{case}.yaml").read_text()
            self._parsed[case] = [doc for doc in yaml.load_all(text, Loader=_LOADER) if doc]
        return copy.deepcopy(self._parsed[case])

    def notes(self, case: str) -> str:
        return (self.out / f"{case}.NOTES.txt").read_text()

    def kinds(self, case: str, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs(case) if doc["kind"] == kind]

    def one(self, case: str, kind: str, name: str) -> dict[str, Any]:
        found = [doc for doc in self.kinds(case, kind) if doc["metadata"]["name"] == name]
        assert len(found) == 1, f"case {case!r}: expected one {kind} {name!r}, found {len(found)}"
        return found[0]


def render_chart(python: Path, out: Path) -> Rendered:
    """Lint and render every scenario and extra case into ``out``."""
    cases_dir = out / "cases"
    cases_dir.mkdir(parents=True)
    args: list[str] = []
    for name, values in EXTRA_CASES.items():
        path = cases_dir / f"{name}-values.yaml"
        path.write_text(yaml.safe_dump(values, sort_keys=False))
        args += ["--case", f"{name}={path}"]
    proc = subprocess.run(
        [
            str(python),
            str(REPO / "scripts" / "helm_chart.py"),
            str(CHART),
            str(out),
            "--base",
            str(BASE_VALUES),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/helm_chart.py exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return Rendered(out, json.loads((out / "report.json").read_text()))


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    """The pod spec of a Deployment, StatefulSet or Job."""
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def containers(docs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, container) for every container of every pod-bearing object."""
    return [
        (doc, container)
        for doc in docs
        if doc["kind"] in ("Deployment", "StatefulSet", "Job")
        for container in pod_spec(doc)["containers"]
    ]
