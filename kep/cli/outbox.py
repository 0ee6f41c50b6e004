"""``kep outbox``: the transactional outbox's relay, standalone (``relay``) and inside ``kep run``, and what waits in
the outbox (``ls``)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Any

import structlog
import typer
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.table import Table

from kep.broker import is_embedded
from kep.cli._common import (
    BootstrapOption,
    JsonOption,
    check_cluster,
    console,
    fail,
    key_text,
    plain,
    print_json,
    span,
)
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


ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", envvar="KEP_CONFIG", help="Worker settings YAML file.")
]
StoreOption = Annotated[
    str | None,
    typer.Option("--idempotency-store", help="The outbox's database: sqlite:///path or postgresql://"),
]
TableOption = Annotated[str | None, typer.Option("--table", help="The outbox table (default kep_outbox).")]


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
    config: ConfigOption = None,
    bootstrap_servers: BootstrapOption = None,
    idempotency_store: StoreOption = None,
    table: TableOption = None,
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


@app.command("ls")
def ls_command(
    config: ConfigOption = None,
    idempotency_store: StoreOption = None,
    table: TableOption = None,
    limit: Annotated[
        int, typer.Option("--limit", min=0, max=1000, help="How many of the oldest unsent rows to list.")
    ] = 10,
    as_json: JsonOption = False,
) -> None:
    """What waits in the outbox: unsent rows per topic with the age of the oldest, the rows kept as history,
    and the oldest unsent rows. A relay that is down or cannot publish shows here as a growing age."""
    try:
        settings, _ = load_settings(config, idempotency_store=idempotency_store)
        register_secrets(settings, KafkaSettings())
        outbox = outbox_settings(table=table)
        database = OutboxDatabase(settings.idempotency_store, outbox.table)
    except (KepError, ConsumerError) as exc:
        fail(str(exc))
    if database.path is not None and not database.path.exists():
        fail(f"outbox database {database.where!r} does not exist")
    try:
        conn = database.conn
        by_topic = database.table.pending_by_topic(conn)
        kept = database.table.sent_kept(conn)
        oldest = database.table.oldest_unsent(conn, limit)
    except database.errors as exc:
        missing = "no such table" in str(exc) or "does not exist" in str(exc)
        fail(
            f"outbox table {outbox.table!r} not found in {database.where}"
            if missing
            else f"{database.where}: {exc}"
        )
    finally:
        database.reset()
    rows = [
        {"id": id_, "event_id": event_id, "topic": topic, "key": key_text(key), "age_s": round(age, 3)}
        for id_, event_id, topic, key, age in oldest
    ]
    topics = [{"topic": t, "unsent": n, "oldest_age_s": round(age, 3)} for t, n, age in by_topic]
    unsent = sum(n for _, n, _ in by_topic)
    if as_json:
        print_json({"table": outbox.table, "unsent": unsent, "sent_kept": kept, "topics": topics,
                    "oldest_unsent": rows})  # fmt: skip
        return
    console.print(
        plain(f"{outbox.table} in {database.where}: {unsent:,} unsent, {kept:,} sent and kept as history")
    )
    if not by_topic:
        return
    per_topic = Table(title="unsent per topic", title_justify="left")
    for column in ("topic", "unsent", "oldest"):
        per_topic.add_column(column, overflow="fold", justify="right" if column != "topic" else "left")
    for topic, count, age in by_topic:
        per_topic.add_row(plain(topic), f"{count:,}", span(age))
    console.print(per_topic)
    if oldest:
        listed = Table(title=f"oldest unsent (up to {limit})", title_justify="left")
        for column in ("id", "event id", "topic", "key", "age"):
            listed.add_column(column, overflow="fold")
        for id_, event_id, topic, key, age in oldest:
            listed.add_row(str(id_), plain(event_id), plain(topic), plain(key_text(key)), span(age))
        console.print(listed)
