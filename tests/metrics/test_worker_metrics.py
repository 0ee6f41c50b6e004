"""WorkerMetrics: every hot-path call moves exactly its series; disabled metrics register nothing."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from kep.consumers.metrics import METRIC_NAMES, MetricsError, WorkerMetrics
from kep.consumers.metrics import worker as worker_module
from tests.metrics.support import make_every_hot_path_call

pytestmark = pytest.mark.unit


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_handled_counts_per_topic_and_observes_the_duration(registry: CollectorRegistry) -> None:
    metrics = WorkerMetrics("billing", registry=registry)
    metrics.handled("orders", 0.003)
    metrics.handled("orders", 0.2)
    metrics.handled("payments", 0.01)
    assert value(registry, "kep_messages_processed_total", group="billing", topic="orders") == 2
    assert value(registry, "kep_messages_processed_total", group="billing", topic="payments") == 1
    assert value(registry, "kep_handler_duration_seconds_count", group="billing", topic="orders") == 2
    assert value(
        registry, "kep_handler_duration_seconds_sum", group="billing", topic="orders"
    ) == pytest.approx(0.203)
    assert (
        value(registry, "kep_handler_duration_seconds_bucket", group="billing", topic="orders", le="0.005")
        == 1
    )


def test_failed_counts_by_exception_and_observes_the_duration(registry: CollectorRegistry) -> None:
    metrics = WorkerMetrics("billing", registry=registry)
    metrics.failed("orders", "ValueError", 0.5)
    metrics.failed("orders", "ValueError", 0.5)
    metrics.failed("orders", "billing.PaymentDeclined", 0.1)
    failed = "kep_messages_failed_total"
    assert value(registry, failed, group="billing", topic="orders", exception="ValueError") == 2
    assert value(registry, failed, group="billing", topic="orders", exception="billing.PaymentDeclined") == 1
    assert value(registry, "kep_handler_duration_seconds_count", group="billing", topic="orders") == 3
    assert value(registry, "kep_messages_processed_total", group="billing", topic="orders") == 0


def test_exception_types_beyond_the_cap_are_counted_as_other(
    registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "MAX_EXCEPTION_TYPES", 2)
    metrics = WorkerMetrics("billing", registry=registry)
    for name in ["A", "B", "C", "D", "A"]:
        metrics.failed("orders", name, 0.0)
    failed = "kep_messages_failed_total"
    assert value(registry, failed, group="billing", topic="orders", exception="A") == 2
    assert value(registry, failed, group="billing", topic="orders", exception="B") == 1
    assert value(registry, failed, group="billing", topic="orders", exception="other") == 2
    assert value(registry, failed, group="billing", topic="orders", exception="C") is None


def test_retries_dead_letters_and_duplicates_have_their_own_series(registry: CollectorRegistry) -> None:
    metrics = WorkerMetrics("billing", registry=registry)
    metrics.retried("orders", "10s")
    metrics.retried("orders", "10s")
    metrics.retried("orders", "blocking")
    metrics.dead_lettered("orders")
    metrics.skipped_duplicate("orders")
    metrics.skipped_duplicate("orders")
    assert value(registry, "kep_messages_retried_total", group="billing", topic="orders", tier="10s") == 2
    assert (
        value(registry, "kep_messages_retried_total", group="billing", topic="orders", tier="blocking") == 1
    )
    assert value(registry, "kep_messages_dead_lettered_total", group="billing", topic="orders") == 1
    assert value(registry, "kep_messages_duplicate_skipped_total", group="billing", topic="orders") == 2


def test_commits_observe_duration_and_count_failures(registry: CollectorRegistry) -> None:
    metrics = WorkerMetrics("billing", registry=registry)
    assert value(registry, "kep_commit_failures_total", group="billing") == 0
    metrics.commit(0.004, ok=True)
    metrics.commit(1.5, ok=False)
    assert value(registry, "kep_commit_duration_seconds_count", group="billing") == 2
    assert value(registry, "kep_commit_failures_total", group="billing") == 1


def test_rebalances_by_kind_start_at_zero_and_unknown_kinds_are_refused(registry: CollectorRegistry) -> None:
    metrics = WorkerMetrics("billing", registry=registry)
    for kind in ("assign", "revoke", "lost"):
        assert value(registry, "kep_consumer_rebalances_total", group="billing", kind=kind) == 0
    metrics.rebalance("assign")
    metrics.rebalance("assign")
    metrics.rebalance("lost")
    assert value(registry, "kep_consumer_rebalances_total", group="billing", kind="assign") == 2
    assert value(registry, "kep_consumer_rebalances_total", group="billing", kind="lost") == 1
    with pytest.raises(MetricsError, match="rebalance kind 'moved' is not one of assign, revoke, lost"):
        metrics.rebalance("moved")


def test_declare_creates_topic_series_at_zero(registry: CollectorRegistry) -> None:
    metrics = WorkerMetrics("billing", registry=registry)
    assert value(registry, "kep_messages_processed_total", group="billing", topic="orders") is None
    metrics.declare(["orders"])
    assert value(registry, "kep_messages_processed_total", group="billing", topic="orders") == 0
    assert value(registry, "kep_messages_dead_lettered_total", group="billing", topic="orders") == 0


def test_build_info_carries_the_version(registry: CollectorRegistry) -> None:
    from importlib.metadata import version

    WorkerMetrics("billing", registry=registry)
    assert value(registry, "kep_build_info", version=version("kep-kafka")) == 1


def test_disabled_metrics_register_nothing_and_every_call_is_a_no_op(registry: CollectorRegistry) -> None:
    metrics = WorkerMetrics("billing", registry=registry, enabled=False)
    make_every_hot_path_call(metrics)
    metrics.declare(["orders"])
    assert [m.name for m in registry.collect()] == []


def test_every_family_on_the_registry_is_a_documented_name(registry: CollectorRegistry) -> None:
    WorkerMetrics("billing", registry=registry)
    families = set()
    for metric in registry.collect():
        suffix = {"counter": "_total", "info": "_info"}.get(metric.type, "")
        families.add(metric.name + suffix)
    assert families == set(METRIC_NAMES)


def test_a_second_worker_metrics_on_one_registry_is_a_clear_duplicate(registry: CollectorRegistry) -> None:
    WorkerMetrics("billing", registry=registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        WorkerMetrics("billing", registry=registry)
