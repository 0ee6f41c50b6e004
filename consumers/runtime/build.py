"""Assemble a worker from an app, its settings and the topology."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from kep.consumers import redact
from kep.consumers.app import App
from kep.consumers.idempotency.base import IdempotencyStore
from kep.consumers.idempotency.factory import open_store
from kep.consumers.limits.setup import worker_limits
from kep.consumers.metrics import Health, WorkerMetrics
from kep.consumers.outbox import handler_outbox
from kep.consumers.retry.classify import ErrorClassifier
from kep.consumers.retry.policy import RetryPolicy
from kep.consumers.retry.router import Router
from kep.consumers.runtime.async_runner import AsyncRunner
from kep.consumers.runtime.plan import WorkerPlan, make_plan
from kep.consumers.runtime.processor import Processor
from kep.consumers.runtime.settle import Settler
from kep.consumers.runtime.worker import Worker
from kep.consumers.settings import ConsumerSettings
from kep.consumers.status.recorder import status_recorder
from kep.schemas.codec import codec_for
from kep.schemas.settings import SchemaRegistrySettings
from kep.topology.loader import schema_registry as local_schemas
from kep.topology.model import Topology
from kep.topology.settings import KafkaSettings


def register_secrets(settings: ConsumerSettings, kafka: KafkaSettings) -> None:
    """Mask the secrets of this configuration in every log line, error and dead-letter header from now on."""
    redact.register_url(settings.idempotency_store)
    redact.register_url(settings.schema_registry_url)
    try:
        redact.register_config(kafka.as_librdkafka_dict())
    except Exception:  # noqa: BLE001, S110 - settings that cannot be rendered fail later, with their own error
        pass


def build_worker(
    app: App,
    settings: ConsumerSettings,
    kafka: KafkaSettings,
    *,
    topology: Topology | None = None,
    registry: CollectorRegistry | None = None,
    store: IdempotencyStore | None = None,
    probe: bool = True,
    schema_registry: SchemaRegistrySettings | None = None,
) -> Worker:
    """``schema_registry``: how to talk to the registry at ``settings.schema_registry_url`` (default:
    ``KEP_SCHEMA_REGISTRY_*``)."""
    register_secrets(settings, kafka)
    plan = make_plan(app, settings, kafka, topology)
    metrics = WorkerMetrics(plan.group, registry=registry, enabled=settings.metrics_enabled)
    metrics.declare(plan.main_topics)
    if store is None:  # not `store or ...`: an empty store has a length of 0 and is falsy
        store = open_store(
            settings.idempotency_store,
            plan.group,
            ttl_s=settings.idempotency_ttl_s,
            lease_s=settings.idempotency_lease_s,
        )
    store.check()
    settler = Settler(group=plan.group, producer=plan.producer, limits=plan.limits, metrics=metrics)
    outcomes = status_recorder(settings, plan.group, plan.topology, kafka)
    codec = codec_for(settings.schema_registry_url, local_schemas(plan.topology), settings=schema_registry)
    limits = worker_limits(
        app,
        plan.group,
        plan.group_spec,
        store_url=settings.idempotency_store,
        lease_s=settings.idempotency_lease_s,
        registry=metrics.registry if settings.metrics_enabled else None,
        topology=plan.topology,
    )
    processor = Processor(
        app=app,
        group=plan.group,
        codec=codec,
        store=store,
        router=_router(app, plan, tracebacks=settings.dead_letter_tracebacks),
        settler=settler,
        metrics=metrics,
        async_runner=AsyncRunner(),
        outcomes=outcomes,
        outbox=handler_outbox(store, plan.topology, codec),
        limits=limits,
    )
    worker = Worker(plan, processor, metrics=metrics, health=Health(ttl_s=settings.health_ttl_s))
    worker.on_close(outcomes.close)
    if limits is not None:
        worker.on_close(limits.close)
    if probe and settings.metrics_enabled:
        from kep.consumers.lag.probe import LagProbe

        # the probe reads at the worker's own isolation level, so markers and aborted records are not lag
        lag_probe = LagProbe(kafka, isolation_level=plan.consumer_config().get("isolation.level"))
        worker.on_close(lag_probe.close)
        metrics.bind(worker, lag_probe.probe)
    else:
        metrics.bind(worker)
    return worker


def _router(app: App, plan: WorkerPlan, *, tracebacks: bool = True) -> Router:
    classifier = ErrorClassifier(fatal=app.fatal, retryable_only=app.retryable_only)
    policies: dict[str, RetryPolicy] = {}
    dlq_topics: dict[str, str | None] = {}
    spec = plan.group_spec
    if spec is not None:
        for source in plan.main_topics:
            retry = spec.retry_for(source)
            policy = RetryPolicy.from_topology(spec, source)
            policy.classifier = ErrorClassifier(
                fatal=(*app.fatal, *retry.fatal_exceptions), retryable_only=app.retryable_only
            )
            policies[source] = policy
            dlq_topics[source] = spec.dlq_topic(source)
    return Router(
        group=plan.group,
        policies=policies,
        dlq_topics=dlq_topics,
        classifier=classifier,
        tracebacks=tracebacks,
    )
