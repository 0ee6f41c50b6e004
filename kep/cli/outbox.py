"""``kep outbox``: the transactional outbox's relay, standalone (``relay``) and inside ``kep run``."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Any

import structlog
import typer
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from pydantic_settings import SettingsError

from kep.broker import is_embedded
from kep.cli._common import BootstrapOption, check_cluster, fail
from kep.cli._service import loop_health, serve_until_signalled
from kep.consumers.errors import ConsumerError
from kep.consumers.runtime.build import register_secrets
from kep.consumers.settings import ConsumerSettings, load_settings
from kep.logs import configure_logging
from kep.producers.errors import OutboxError
from kep.producers.outbox import OutboxDatabase, OutboxRelay, OutboxSettings, RelayMetrics, RelayThread
from kep.schemas.errors import KepError
from kep.schemas.settings import settings_problems
from kep.topology.settings import KafkaSettings

log = structlog.get_logger("kep.outbox")

app = typer.Typer(
    help="The transactional outbox: events saved in the service's database transaction, then published.",
    no_args_is_help=True,
)


def outbox_settings(**explicit: Any) -> OutboxSettings:
    """``KEP_OUTBOX_*`` and ``explicit`` values; OutboxError naming the field when they are wrong."""
    try:
        return OutboxSettings(**{k: v for k, v in explicit.items() if v is not None})
    except (ValidationError, SettingsError) as exc:
        raise OutboxError(f"invalid outbox settings: {settings_problems(exc, 'outbox.')}") from None


def exactly_once(settings: OutboxSettings, kafka: KafkaSettings) -> bool:
    """Kafka transactions, unless at-least-once was asked for or (auto) the broker is the embedded one, whose
    read_committed consumers see aborted transactions."""
    if settings.delivery == "auto":
        return not is_embedded(kafka.bootstrap_servers)
    return settings.delivery == "exactly-once"


def worker_relay(
    settings: ConsumerSettings, kafka: KafkaSettings, registry: CollectorRegistry
) -> RelayThread | None:
    """The relay ``kep run`` starts beside its worker: when the store is SQL and ``KEP_OUTBOX_RELAY`` is not
    false; its metrics on the worker's registry. None otherwise."""
    scheme = settings.idempotency_store.split("://", 1)[0].lower()
    if scheme not in ("sqlite", "postgresql", "postgres"):
        return None
    outbox = outbox_settings()
    if not outbox.relay:
        return None
    relay = OutboxRelay(
        settings.idempotency_store,
        kafka,
        outbox,
        exactly_once=exactly_once(outbox, kafka),
        metrics=RelayMetrics(outbox.table, registry),
    )
    return RelayThread(relay).start()


@app.command("relay")
def relay_command(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", envvar="KEP_CONFIG", help="Worker settings YAML file.")
    ] = None,
    bootstrap_servers: BootstrapOption = None,
    idempotency_store: Annotated[
        str | None,
        typer.Option("--idempotency-store", help="The outbox's database: sqlite:///path or postgresql://"),
    ] = None,
    table: Annotated[
        str | None, typer.Option("--table", help="The outbox table (default kep_outbox).")
    ] = None,
    delivery: Annotated[
        str | None, typer.Option("--delivery", help="auto, exactly-once or at-least-once.")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", help="Port of /metrics, /healthz, /readyz (0: none).")
    ] = None,
    metrics_host: Annotated[
        str | None, typer.Option("--metrics-host", help="Address the metrics server listens on.")
    ] = None,
    log_format: Annotated[str | None, typer.Option("--log-format", help="auto, console or json.")] = None,
) -> None:
    """Publish the outbox's rows until SIGTERM: one active relay per database, the others stand by."""
    overrides: dict[str, Any] = {
        "idempotency_store": idempotency_store,
        "metrics_port": metrics_port,
        "metrics_host": metrics_host,
        "log_format": log_format,
    }
    if bootstrap_servers:
        overrides["kafka"] = {"bootstrap_servers": bootstrap_servers}
    try:
        settings, kafka = load_settings(config, **overrides)
        register_secrets(settings, kafka)
        configure_logging(settings.log_format, settings.log_level)
        outbox = outbox_settings(table=table, delivery=delivery)
        OutboxDatabase(settings.idempotency_store, outbox.table)  # a store that is not SQL is said now
    except (KepError, ConsumerError) as exc:
        fail(str(exc))
    check_cluster(kafka)
    registry = CollectorRegistry()
    relay = OutboxRelay(
        settings.idempotency_store,
        kafka,
        outbox,
        exactly_once=exactly_once(outbox, kafka),
        metrics=RelayMetrics(outbox.table, registry),
    )
    health = loop_health()
    relay.beat = health.beat
    stop = threading.Event()
    log.info("outbox relay starting", table=outbox.table, exactly_once=relay.exactly_once)
    serve_until_signalled(
        lambda: relay.run(stop),
        stop.set,
        registry=registry,
        health=health,
        port=settings.metrics_port,
        host=settings.metrics_host,
    )
