"""What the chart's objects do, proved on Helm's own render of each scenario."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.deploy.chart import SCENARIOS, Rendered, containers, pod_spec

pytestmark = pytest.mark.unit


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


def _selected(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _workloads(chart: Rendered, scenario: str) -> list[dict[str, Any]]:
    return [d for d in chart.docs(scenario) if d["kind"] in ("Deployment", "StatefulSet")]


def test_each_consumer_group_runs_kep_run_in_its_own_deployment(chart: Rendered) -> None:
    deployments = {d["metadata"]["name"]: d for d in chart.kinds("two-groups", "Deployment")}
    assert set(deployments) == {"kep-billing", "kep-shipping", "kep-lag-exporter"}
    for group, handler in (
        ("billing", "shop.billing:app"),
        ("shipping", "shop.shipping:app"),
    ):
        (container,) = pod_spec(deployments[f"kep-{group}"])["containers"]
        assert container["args"][:2] == ["run", handler]
        assert deployments[f"kep-{group}"]["metadata"]["labels"]["kep/consumer-group"] == group


def test_enabling_both_keda_and_hpa_fails_the_render_naming_the_group(chart: Rendered) -> None:
    error = chart.error("both-autoscalers")
    assert error is not None
    assert "consumerGroups[billing]" in error and "keda" in error and "hpa" in error


@pytest.mark.parametrize(
    ("scenario", "drain", "grace"),
    [("default", "25", 40), ("static-membership", "45", 60), ("grace-pinned", "25", 90)],
)
def test_termination_grace_period_exceeds_the_drain_deadline(
    chart: Rendered, scenario: str, drain: str, grace: int
) -> None:
    (workload,) = [w for w in _workloads(chart, scenario) if w["metadata"]["name"] == "kep-billing"]
    spec = pod_spec(workload)
    assert _env(spec["containers"][0])["KEP_DRAIN_TIMEOUT_S"]["value"] == drain
    assert spec["terminationGracePeriodSeconds"] == grace > float(drain)


@pytest.mark.parametrize(("scenario", "processes"), [("default", "1"), ("processes-auto", "auto")])
def test_a_pod_runs_one_worker_process_unless_told(chart: Rendered, scenario: str, processes: str) -> None:
    """``kep run`` alone runs one process per core; in a pod, replicas scale the group, so the chart says 1."""
    (workload,) = [w for w in _workloads(chart, scenario) if w["metadata"]["name"] == "kep-billing"]
    assert _env(pod_spec(workload)["containers"][0])["KEP_PROCESSES"]["value"] == processes


@pytest.mark.parametrize("case", ["grace-below-drain", "grace-equal-drain"])
def test_a_grace_period_not_above_the_drain_deadline_fails_the_render(chart: Rendered, case: str) -> None:
    error = chart.error(case)
    assert error is not None and "terminationGracePeriodSeconds" in error and "drainTimeoutSeconds" in error


def test_static_membership_runs_a_statefulset_whose_pod_names_are_instance_ids(chart: Rendered) -> None:
    assert chart.kinds("static-membership", "Deployment") == [
        d
        for d in chart.kinds("static-membership", "Deployment")
        if d["metadata"]["name"] == "kep-lag-exporter"
    ]
    statefulset = chart.one("static-membership", "StatefulSet", "kep-billing")
    assert statefulset["spec"]["replicas"] == 3
    assert statefulset["spec"]["serviceName"] == "kep-billing"
    chart.one("static-membership", "Service", "kep-billing")
    env = _env(pod_spec(statefulset)["containers"][0])
    assert env["KEP_GROUP_INSTANCE_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["KEP_SESSION_TIMEOUT_MS"]["value"] == "90000"
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data" and claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert "data" not in {v["name"] for v in pod_spec(statefulset)["volumes"]}
    for scenario in ("default", "keda", "hpa"):
        for workload in _workloads(chart, scenario):
            assert "KEP_GROUP_INSTANCE_ID" not in _env(pod_spec(workload)["containers"][0])


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_kep_pod_is_hardened_and_writes_only_to_its_volumes(chart: Rendered, scenario: str) -> None:
    for workload, container in containers(chart.docs(scenario)):
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        claims = {c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])}
        writable = {v["name"] for v in spec["volumes"] if "emptyDir" in v} | claims
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert mounts["/tmp"]["name"] in writable
        for mount in mounts.values():
            assert mount["name"] in writable or mount.get("readOnly") is True, mount
        if container["args"][0] == "run":
            assert mounts["/var/lib/kep"]["name"] in writable
            assert (
                _env(container)["KEP_IDEMPOTENCY_STORE"]
                .get("value", "sqlite:////var/lib/kep/")
                .startswith(("sqlite:////var/lib/kep/", "redis", "postgres", "memory"))
            )


def test_sasl_and_tls_credentials_come_only_from_existing_secrets(chart: Rendered) -> None:
    docs = chart.docs("sasl-tls")
    assert not [d for d in docs if d["kind"] == "Secret"]
    for _workload, container in containers(docs):
        env = _env(container)
        assert env["KEP_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
        assert env["KEP_KAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-512"
        for name, secret, key in (
            ("KEP_KAFKA_SASL_USERNAME", "kep-kafka-credentials", "username"),
            ("KEP_KAFKA_SASL_PASSWORD", "kep-kafka-credentials", "password"),
            ("KEP_KAFKA_SSL_KEY_PASSWORD", "kep-kafka-tls", "key-password"),
        ):
            assert env[name] == {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        assert env["KEP_KAFKA_SSL_CA_LOCATION"]["value"] == "/etc/kep/kafka-tls/ca.crt"
        assert env["KEP_KAFKA_SSL_CERTIFICATE_LOCATION"]["value"] == "/etc/kep/kafka-tls/tls.crt"
        mount = {m["mountPath"]: m for m in container["volumeMounts"]}["/etc/kep/kafka-tls"]
        assert mount["readOnly"] is True
    auth = chart.one("sasl-tls", "TriggerAuthentication", "kep-billing-kafka")
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    assert refs["password"] == ("kep-kafka-credentials", "password") and refs["ca"] == (
        "kep-kafka-tls",
        "ca.crt",
    )
    trigger = chart.one("sasl-tls", "ScaledObject", "kep-billing")["spec"]["triggers"][0]
    assert trigger["metadata"]["sasl"] == "scram_sha512" and trigger["metadata"]["tls"] == "enable"
    assert trigger["authenticationRef"] == {"name": "kep-billing-kafka"}


def test_a_user_env_entry_replaces_the_charts_instead_of_duplicating_it(chart: Rendered) -> None:
    container = pod_spec(chart.one("sasl-tls", "Deployment", "kep-billing"))["containers"][0]
    names = [item["name"] for item in container["env"]]
    assert names.count("KEP_IDEMPOTENCY_STORE") == 1
    assert _env(container)["KEP_IDEMPOTENCY_STORE"]["valueFrom"]["secretKeyRef"]["name"] == "kep-redis"


def test_sasl_without_its_secret_fails_the_render(chart: Rendered) -> None:
    error = chart.error("sasl-without-secret")
    assert error is not None and "kafka.sasl.existingSecret" in error


def test_two_groups_with_one_name_fail_the_render(chart: Rendered) -> None:
    error = chart.error("duplicate-groups")
    assert error is not None and '"billing" is used twice' in error


def test_topology_is_applied_by_a_pre_install_and_pre_upgrade_hook_job(chart: Rendered) -> None:
    job = chart.one("topology-changed", "Job", "kep-topology-apply")
    hook_config = chart.one("topology-changed", "ConfigMap", "kep-topology-apply")
    for hook in (job, hook_config):
        assert hook["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    weight = int(hook_config["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert weight < int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "Never"
    (container,) = spec["containers"]
    assert container["args"] == ["topology", "apply", "--topology", "/etc/kep/topology/topology.yaml"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == "topology"]
    assert volume["configMap"]["name"] == "kep-topology-apply"
    workers_copy = chart.one("topology-changed", "ConfigMap", "kep-topology")
    assert hook_config["data"] == workers_copy["data"]
    assert "helm.sh/hook" not in workers_copy["metadata"].get("annotations", {})
    assert not chart.kinds("minimal", "Job")


def test_a_topology_file_in_the_image_is_applied_and_read_from_there(chart: Rendered) -> None:
    (container,) = pod_spec(chart.one("default", "Job", "kep-topology-apply"))["containers"]
    assert container["image"] == "kep-shop:0.1.0"
    assert container["args"] == ["topology", "apply", "--topology", "/srv/shop/topology.yaml"]
    (worker,) = pod_spec(chart.one("default", "Deployment", "kep-billing"))["containers"]
    assert {"name": "KEP_TOPOLOGY", "value": "/srv/shop/topology.yaml"} in worker["env"]
    for workload in (
        chart.one("default", "Job", "kep-topology-apply"),
        chart.one("default", "Deployment", "kep-billing"),
    ):
        assert "topology" not in {v["name"] for v in pod_spec(workload)["volumes"]}
    assert not [c for c in chart.kinds("default", "ConfigMap") if "topology" in c["metadata"]["name"]]


def test_the_chart_has_no_topology_of_its_own(chart: Rendered) -> None:
    missing = chart.error("no-topology")
    assert missing is not None and "the chart needs your topology; set topology.file" in missing
    both = chart.error("topology-both")
    assert both is not None and "set topology.file (a path in your image) or topology.content" in both


def _checksum(chart: Rendered, case: str) -> str:
    workload = chart.one(case, "Deployment", "kep-billing")
    checksum: str = workload["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    return checksum


def test_changing_the_topology_rolls_the_workers(chart: Rendered) -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", _checksum(chart, "default"))
    assert _checksum(chart, "topology-changed") != _checksum(chart, "default")
    assert _checksum(chart, "topology-file-moved") != _checksum(chart, "default")
    assert chart.one("topology-changed", "ConfigMap", "kep-topology")["data"]["topology.yaml"].startswith(
        "topics:"
    )


def test_keda_scales_each_group_on_its_lag_and_owns_the_replica_count(chart: Rendered) -> None:
    billing = chart.one("keda", "ScaledObject", "kep-billing")["spec"]
    assert billing["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "kep-billing"}
    (trigger,) = billing["triggers"]
    assert trigger["type"] == "prometheus"
    query = trigger["metadata"]["query"]
    assert 'kep_group_lag_messages{namespace="kep", group="billing", topic!~' in query
    # Retry and dead-letter topics hold messages that wait on purpose: they must not drive scaling.
    excluded = re.search(r'topic!~"((?:[^"\\]|\\.)*)"', query)
    assert excluded is not None
    pattern = excluded[1].encode().decode("unicode_escape")  # PromQL string escapes, as Go's
    topics = ["orders", "orders.billing.retry.10s", "orders.billing.dlq", "payments"]
    assert [t for t in topics if re.fullmatch(pattern, t)] == topics[1:3]
    assert trigger["metadata"]["threshold"] == "500"
    assert billing["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    shipping = chart.one("two-groups", "ScaledObject", "kep-shipping")["spec"]
    (trigger,) = shipping["triggers"]
    assert trigger["type"] == "kafka" and "authenticationRef" not in trigger
    assert trigger["metadata"]["consumerGroup"] == "shipping" and trigger["metadata"]["topic"] == "orders"
    assert trigger["metadata"]["offsetResetPolicy"] == "earliest"
    assert shipping["minReplicaCount"] == 0
    assert shipping["scaleTargetRef"]["name"] == "kep-shipping"
    for name in ("kep-billing", "kep-shipping"):
        assert "replicas" not in chart.one("two-groups", "Deployment", name)["spec"]
    assert "replicas" not in chart.one("keda", "Deployment", "kep-billing")["spec"]
    assert chart.one("default", "Deployment", "kep-billing")["spec"]["replicas"] == 2
    assert not chart.kinds("keda", "HorizontalPodAutoscaler")


def test_hpa_scales_on_lag_per_replica_and_cpu(chart: Rendered) -> None:
    hpa = chart.one("hpa", "HorizontalPodAutoscaler", "kep-billing")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "kep-billing"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    external, resource = hpa["metrics"]
    assert external["external"]["metric"] == {
        "name": "kep_group_lag_messages",
        "selector": {"matchLabels": {"group": "billing"}},
    }
    assert external["external"]["target"] == {"type": "AverageValue", "averageValue": "1000"}
    assert resource["resource"]["target"]["averageUtilization"] == 80
    assert "replicas" not in chart.one("hpa", "Deployment", "kep-billing")["spec"]
    assert not chart.kinds("hpa", "ScaledObject")
    error = chart.error("hpa-without-metric")
    assert error is not None and "lagPerReplica" in error


def test_selectors_of_services_budgets_and_spread_constraints_match_their_pods(chart: Rendered) -> None:
    for scenario in SCENARIOS:
        docs = chart.docs(scenario)
        pods = {
            d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
            for d in _workloads(chart, scenario)
        }
        for workload in _workloads(chart, scenario):
            labels = pods[workload["metadata"]["name"]]
            assert _selected(workload["spec"]["selector"]["matchLabels"], labels)
            for constraint in pod_spec(workload).get("topologySpreadConstraints", []):
                assert _selected(constraint["labelSelector"]["matchLabels"], labels)
        for doc in docs:
            if doc["kind"] in ("Service", "PodDisruptionBudget"):
                selector = doc["spec"]["selector"]
                selector = selector.get("matchLabels", selector)
                chosen = [name for name, labels in pods.items() if _selected(selector, labels)]
                assert chosen == [doc["metadata"]["name"]], (
                    f"{scenario}: {doc['kind']} {doc['metadata']['name']}"
                )


def test_a_group_can_turn_off_a_default_that_is_on_for_the_others(chart: Rendered) -> None:
    """Per-group overrides of the worker defaults win, even when they are false."""
    budgets = {d["metadata"]["name"] for d in chart.kinds("two-groups", "PodDisruptionBudget")}
    assert budgets == {"kep-shipping"}
    assert not chart.kinds("minimal", "PodDisruptionBudget")


def test_group_id_override_reaches_the_worker_the_exporter_and_the_notes(chart: Rendered) -> None:
    container = pod_spec(chart.one("group-id-override", "Deployment", "kep-billing"))["containers"][0]
    assert _env(container)["KEP_GROUP"]["value"] == "billing-eu"
    exporter = pod_spec(chart.one("group-id-override", "Deployment", "kep-lag-exporter"))["containers"][0]
    regex = exporter["args"][exporter["args"].index("--group") + 1]
    assert regex == r"^(billing-eu)$|^kep-dlq-replay\..+\.(billing-eu)\.dlq$"
    assert "billing-eu" in chart.notes("group-id-override")
    assert "KEP_GROUP" not in _env(
        pod_spec(chart.one("default", "Deployment", "kep-billing"))["containers"][0]
    )


def test_lag_exporter_watches_exactly_the_charts_groups(chart: Rendered) -> None:
    (container,) = pod_spec(chart.one("two-groups", "Deployment", "kep-lag-exporter"))["containers"]
    regex = container["args"][container["args"].index("--group") + 1]
    assert regex == r"^(billing|shipping)$|^kep-dlq-replay\..+\.(billing|shipping)\.dlq$"
    candidates = (
        "billing",
        "shipping",
        "billing2",
        "xbilling",
        "kep-dlq-replay.orders.billing.dlq",
        "kep-dlq-replay.orders.audit.dlq",
        "kep-lag-probe-1234",
    )
    assert [g for g in candidates if re.fullmatch(regex, g)] == [
        "billing",
        "shipping",
        "kep-dlq-replay.orders.billing.dlq",
    ]
    assert (
        chart.one("two-groups", "Service", "kep-lag-exporter")["spec"]["ports"][0]["targetPort"]
        == "http-metrics"
    )
    assert not [d for d in chart.docs("minimal") if "lag-exporter" in d["metadata"]["name"]]


def test_service_monitors_scrape_named_ports_of_the_workers_and_the_exporter(chart: Rendered) -> None:
    services = chart.kinds("keda", "Service")
    for monitor in chart.kinds("keda", "ServiceMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        matched = [s for s in services if _selected(selector, s["metadata"]["labels"])]
        assert matched, monitor["metadata"]["name"]
        port = monitor["spec"]["endpoints"][0]["port"]
        for service in matched:
            assert port in {p["name"] for p in service["spec"]["ports"]}
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert {m["metadata"]["name"] for m in chart.kinds("keda", "ServiceMonitor")} == {
        "kep-workers",
        "kep-lag-exporter",
    }
    assert not chart.kinds("default", "ServiceMonitor")


def test_the_minimal_scenario_renders_only_what_a_worker_needs(chart: Rendered) -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in chart.docs("minimal"))
    assert kinds == [
        ("ConfigMap", "kep-billing-config"),
        ("Deployment", "kep-billing"),
        ("Service", "kep-billing"),
    ]  # the topology is a file in the image
    workload = pod_spec(chart.one("minimal", "Deployment", "kep-billing"))
    assert workload["serviceAccountName"] == "default" and "topologySpreadConstraints" not in workload


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_notes_list_every_group_and_how_to_reach_it(chart: Rendered, scenario: str) -> None:
    notes = chart.notes(scenario)
    for workload in _workloads(chart, scenario):
        group = workload["metadata"]["labels"].get("kep/consumer-group")
        if group:
            assert f"{workload['kind']} {workload['metadata']['name']}" in notes
            assert f"grace {pod_spec(workload)['terminationGracePeriodSeconds']}s" in notes


def test_the_console_is_off_by_default_and_reads_its_secrets_from_existing_secrets(chart: Rendered) -> None:
    assert not [d for d in chart.kinds("default", "Deployment") if d["metadata"]["name"] == "kep-console"]
    deployment = chart.one("console", "Deployment", "kep-console")
    assert deployment["spec"]["replicas"] == 1  # its index and audit log are one SQLite file
    (container,) = pod_spec(deployment)["containers"]
    args = container["args"]
    assert args[:5] == ["console", "--host", "0.0.0.0", "--port", "8090"]
    assert args[args.index("--group") + 1] == "^(billing)$"
    env = _env(container)
    for name in ("KEP_CONSOLE_OPERATOR_TOKEN", "KEP_CONSOLE_SECRET_KEY"):
        assert (
            "value" not in env[name]
            and env[name]["valueFrom"]["secretKeyRef"]["name"] == "kep-console-operator"
        )
    assert env["KEP_TOPOLOGY"]["value"] == "/etc/kep/topology/topology.yaml"
    assert env["KEP_CONSOLE_SECURE_COOKIES"]["value"] == "true"
    service = chart.one("console", "Service", "kep-console")
    assert service["spec"]["ports"][0]["port"] == 8090


def _rules(chart: Rendered, case: str) -> dict[str, dict[str, Any]]:
    (rule,) = chart.kinds(case, "PrometheusRule")
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}


def test_alert_thresholds_for_and_severity_come_from_the_values(chart: Rendered) -> None:
    shipped, tuned = _rules(chart, "keda"), _rules(chart, "rule-overrides")
    high = tuned["KepConsumerLagSecondsHigh"]
    assert high["expr"].rstrip().endswith(") > 600") and high["for"] == "20m"
    assert high["expr"].replace("> 600", "> 300") == shipped["KepConsumerLagSecondsHigh"]["expr"]
    assert tuned["KepHandlerFailureRatioHigh"]["expr"].rstrip().endswith(") > 0.1")
    assert tuned["KepPartitionStalled"]["labels"]["severity"] == "page"
    assert "KepRebalanceStorm" not in tuned  # turned off
    assert tuned["KepCommitFailures"] == {
        **shipped["KepCommitFailures"],
        "annotations": {
            **shipped["KepCommitFailures"]["annotations"],
            "runbook_url": "https://git.example.com/kep/blob/v0.1.0/docs/metrics.md#kepcommitfailures",
        },
    }


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("rule-threshold-without-comparison", "prometheusRule.alerts.KepGroupWithoutConsumers.threshold"),
        ("rule-unknown-alert", "prometheusRule.alerts.KepNoSuchAlert: no such alert"),
    ],
)
def test_a_threshold_the_rule_cannot_take_or_an_unknown_alert_fails_the_render(
    chart: Rendered, case: str, needle: str
) -> None:
    error = chart.error(case)
    assert error is not None and needle in error, error


def test_the_default_idempotency_store_is_shared_by_the_replicas(chart: Rendered) -> None:
    (container,) = pod_spec(chart.one("default", "Deployment", "kep-billing"))["containers"]
    assert chart.one("default", "Deployment", "kep-billing")["spec"]["replicas"] == 2
    assert _env(container)["KEP_IDEMPOTENCY_STORE"]["value"].startswith(("redis://", "postgresql://"))


@pytest.mark.parametrize(
    ("case", "how"),
    [
        ("sqlite-two-replicas", "2 replicas"),
        ("memory-two-replicas", "2 replicas"),
        ("sqlite-keda", "KEDA autoscaling up to 6 replicas"),
        ("sqlite-hpa", "HPA autoscaling up to 6 replicas"),
        ("sqlite-in-env-two-replicas", "2 replicas"),
    ],
)
def test_more_than_one_replica_on_a_per_pod_store_fails_the_render_with_a_clear_message(
    chart: Rendered, case: str, how: str
) -> None:
    error = chart.error(case)
    assert error is not None, f"{case} rendered"
    assert f"consumerGroups[billing]: {how} with the per-pod idempotency store" in error
    assert "would not deduplicate each other" in error and "redis://" in error and "postgresql://" in error


@pytest.mark.parametrize("case", ["minimal", "sqlite-keda-one-max"])
def test_one_replica_may_keep_its_keys_in_sqlite(chart: Rendered, case: str) -> None:
    workload = chart.one(case, "Deployment", "kep-billing")
    (container,) = pod_spec(workload)["containers"]
    assert _env(container)["KEP_IDEMPOTENCY_STORE"]["value"].startswith("sqlite:")


def test_outbox_settings_reach_each_worker_and_a_group_can_turn_its_relay_off(chart: Rendered) -> None:
    billing = _env(pod_spec(chart.one("outbox", "Deployment", "kep-billing"))["containers"][0])
    shipping = _env(pod_spec(chart.one("outbox", "Deployment", "kep-shipping"))["containers"][0])
    assert {k: billing[k]["value"] for k in billing if k.startswith("KEP_OUTBOX_")} == {
        "KEP_OUTBOX_RELAY": "true",
        "KEP_OUTBOX_TABLE": "payments_outbox",
        "KEP_OUTBOX_DELIVERY": "at-least-once",
        "KEP_OUTBOX_BATCH_SIZE": "200",
    }
    assert shipping["KEP_OUTBOX_RELAY"]["value"] == "false"
    assert shipping["KEP_OUTBOX_TABLE"]["value"] == "payments_outbox"  # the rest of the defaults still apply
    error = chart.error("outbox-bad-delivery")
    assert error is not None and "delivery" in error
