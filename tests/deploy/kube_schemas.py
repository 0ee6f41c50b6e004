"""Validation of rendered manifests without a cluster.

Built-in kinds: the JSON schemas generated from Kubernetes' OpenAPI that PyPI ``kubernetes-validate`` ships
for each minor version, in their strict variant (an unknown field is an error, as with
``kubectl --validate=strict``). CRD kinds: ``CRD_SCHEMAS``, structural schemas written from the upstream
CRDs (KEDA 2.x ScaledObject and TriggerAuthentication, Prometheus Operator ServiceMonitor and
PrometheusRule): required fields, types and the known keys of every object the chart fills in.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
from referencing import Registry, Resource

SCHEMA_ROOT = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"


def shipped_versions() -> list[tuple[int, int]]:
    """The Kubernetes minor versions kubernetes-validate has schemas for, oldest first."""
    found = {re.match(r"v(\d+)\.(\d+)\.", p.name) for p in SCHEMA_ROOT.iterdir()}
    return sorted((int(m[1]), int(m[2])) for m in found if m)


class UnknownKind(LookupError):
    pass


@cache
def _registry(version: tuple[int, int]) -> tuple[Path, Registry]:
    directory = SCHEMA_ROOT / f"v{version[0]}.{version[1]}.0-local-strict"
    definitions = Resource.from_contents(json.loads((directory / "_definitions.json").read_text()))
    return directory, definitions @ Registry()


@cache
def _validator(version: tuple[int, int], kind: str, api_version: str) -> jsonschema.protocols.Validator:
    directory, registry = _registry(version)
    # apps/v1 -> apps-v1, rbac.authorization.k8s.io/v1 -> rbac-v1, v1 -> v1 (the package's file naming)
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = directory / f"{kind.lower()}-{group_version}.json"
    if not path.exists():
        raise UnknownKind(f"no schema for {kind} {api_version} in Kubernetes {version[0]}.{version[1]}")
    schema = json.loads(path.read_text())
    return jsonschema.Draft202012Validator(schema, registry=Resource.from_contents(schema) @ registry)


def kube_errors(doc: dict[str, Any], version: tuple[int, int]) -> list[str]:
    """Schema violations of a built-in object, as ``path: message``; raises UnknownKind for other kinds."""
    validator = _validator(version, doc["kind"], doc["apiVersion"])
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(doc)
    ]


_DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}
_STRMAP = {"type": "object", "additionalProperties": {"type": "string"}}
_LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"matchLabels": _STRMAP, "matchExpressions": {"type": "array"}},
}


def _crd(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {
                        "type": "string",
                        "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
                        "maxLength": 253,
                    },
                    "namespace": {"type": "string"},
                    "labels": _STRMAP,
                    "annotations": _STRMAP,
                },
            },
            "spec": spec,
        },
    }


_SCALED_OBJECT_SPEC = {
    "type": "object",
    "additionalProperties": False,
    "required": ["scaleTargetRef", "triggers"],
    "properties": {
        "scaleTargetRef": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "name": {"type": "string"},
                "envSourceContainerName": {"type": "string"},
            },
        },
        "minReplicaCount": {"type": "integer", "minimum": 0},
        "maxReplicaCount": {"type": "integer", "minimum": 1},
        "idleReplicaCount": {"type": "integer", "minimum": 0},
        "pollingInterval": {"type": "integer"},
        "cooldownPeriod": {"type": "integer"},
        "initialCooldownPeriod": {"type": "integer"},
        "fallback": {"type": "object"},
        "advanced": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "horizontalPodAutoscalerConfig": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"name": {"type": "string"}, "behavior": {"type": "object"}},
                },
                "restoreToOriginalReplicaCount": {"type": "boolean"},
                "scalingModifiers": {"type": "object"},
            },
        },
        "triggers": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["type", "metadata"],
                "properties": {
                    "type": {"type": "string"},
                    "name": {"type": "string"},
                    # KEDA reads every trigger parameter as a string.
                    "metadata": _STRMAP,
                    "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                    "useCachedMetrics": {"type": "boolean"},
                    "authenticationRef": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name"],
                        "properties": {"name": {"type": "string"}, "kind": {"type": "string"}},
                    },
                },
            },
        },
    },
}

_TRIGGER_AUTH_SPEC = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "secretTargetRef": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["parameter", "name", "key"],
                "properties": {
                    "parameter": {"type": "string"},
                    "name": {"type": "string"},
                    "key": {"type": "string"},
                },
            },
        },
        **{
            key: {"type": ["object", "array"]}
            for key in (
                "env",
                "configMapTargetRef",
                "podIdentity",
                "hashiCorpVault",
                "azureKeyVault",
                "awsSecretManager",
                "gcpSecretManager",
                "boundServiceAccountToken",
            )
        },
    },
}

_ENDPOINT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "port": {"type": "string"},
        "targetPort": {"type": ["string", "integer"]},
        "path": {"type": "string"},
        "scheme": {"enum": ["http", "https"]},
        "params": {"type": "object"},
        "interval": _DURATION,
        "scrapeTimeout": _DURATION,
        "honorLabels": {"type": "boolean"},
        "honorTimestamps": {"type": "boolean"},
        "tlsConfig": {"type": "object"},
        "authorization": {"type": "object"},
        "basicAuth": {"type": "object"},
        "bearerTokenSecret": {"type": "object"},
        "relabelings": {"type": "array", "items": {"type": "object"}},
        "metricRelabelings": {"type": "array", "items": {"type": "object"}},
        "followRedirects": {"type": "boolean"},
        "enableHttp2": {"type": "boolean"},
        "filterRunning": {"type": "boolean"},
    },
}

_SERVICE_MONITOR_SPEC = {
    "type": "object",
    "additionalProperties": False,
    "required": ["selector"],
    "properties": {
        "selector": _LABEL_SELECTOR,
        "namespaceSelector": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "any": {"type": "boolean"},
                "matchNames": {"type": "array", "items": {"type": "string"}},
            },
        },
        "endpoints": {"type": "array", "items": _ENDPOINT},
        "jobLabel": {"type": "string"},
        "targetLabels": {"type": "array", "items": {"type": "string"}},
        "podTargetLabels": {"type": "array", "items": {"type": "string"}},
        "sampleLimit": {"type": "integer"},
        "targetLimit": {"type": "integer"},
        "attachMetadata": {"type": "object"},
    },
}

_PROMETHEUS_RULE_SPEC = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "groups": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "interval": _DURATION,
                    "query_offset": _DURATION,
                    "limit": {"type": "integer"},
                    "labels": _STRMAP,
                    "partial_response_strategy": {"type": "string"},
                    "rules": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["expr"],
                            "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                            "properties": {
                                "alert": {"type": "string"},
                                "record": {"type": "string"},
                                "expr": {"type": ["string", "integer"]},
                                "for": _DURATION,
                                "keep_firing_for": _DURATION,
                                "labels": _STRMAP,
                                "annotations": _STRMAP,
                            },
                        },
                    },
                },
            },
        }
    },
}

CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): _crd("keda.sh/v1alpha1", "ScaledObject", _SCALED_OBJECT_SPEC),
    ("keda.sh/v1alpha1", "TriggerAuthentication"): _crd(
        "keda.sh/v1alpha1", "TriggerAuthentication", _TRIGGER_AUTH_SPEC
    ),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _crd(
        "monitoring.coreos.com/v1", "ServiceMonitor", _SERVICE_MONITOR_SPEC
    ),
    ("monitoring.coreos.com/v1", "PrometheusRule"): _crd(
        "monitoring.coreos.com/v1", "PrometheusRule", _PROMETHEUS_RULE_SPEC
    ),
}


def crd_errors(doc: dict[str, Any]) -> list[str]:
    """Structural violations of a CRD object; raises UnknownKind for a kind with no schema here."""
    schema = CRD_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
    if schema is None:
        raise UnknownKind(f"no structural schema for {doc['kind']} {doc['apiVersion']}")
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(doc)
    ]


def manifest_errors(doc: dict[str, Any], version: tuple[int, int]) -> list[str]:
    """Violations of any object the chart renders: CRD kinds structurally, built-in kinds by Kubernetes."""
    if (doc["apiVersion"], doc["kind"]) in CRD_SCHEMAS:
        return crd_errors(doc)
    return kube_errors(doc, version)
