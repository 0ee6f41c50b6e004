"""``kep run module:app``: run a consumer group worker until SIGTERM/SIGINT, then drain, commit and leave."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from kep.cli._common import BootstrapOption, TopologyOption, caller_modules_importable, check_cluster, fail
from kep.consumers.app import load_app
from kep.consumers.errors import ConsumerError
from kep.consumers.metrics import MetricsServer
from kep.consumers.runtime.build import build_worker
from kep.consumers.settings import load_schema_registry_settings, load_settings
from kep.logs import configure_logging
from kep.schemas.errors import KepError
from kep.topology.loader import load_topology


def command(
    target: Annotated[str, typer.Argument(help="The app to run, as module:attribute.", show_default=False)],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", envvar="KEP_CONFIG", help="Worker settings YAML file.")
    ] = None,
    bootstrap_servers: BootstrapOption = None,
    topology: TopologyOption = None,
    group: Annotated[str | None, typer.Option("--group", help="Override the app's consumer group.")] = None,
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", help="Port of /metrics, /healthz, /readyz (0: none).")
    ] = None,
    idempotency_store: Annotated[
        str | None,
        typer.Option("--idempotency-store", help="memory://, sqlite:///path, redis://, postgresql://"),
    ] = None,
    concurrency: Annotated[
        str | None,
        typer.Option("--concurrency", help="'partition' (default) or 'key' (key-ordered workers)."),
    ] = None,
    log_format: Annotated[str | None, typer.Option("--log-format", help="auto, console or json.")] = None,
) -> None:
    """Run a consumer group worker: at-least-once, idempotent, with retries and dead letters."""
    overrides: dict[str, Any] = {
        "topology": topology,
        "group": group,
        "metrics_port": metrics_port,
        "idempotency_store": idempotency_store,
        "concurrency": concurrency,
        "log_format": log_format,
    }
    if bootstrap_servers:
        overrides["kafka"] = {"bootstrap_servers": bootstrap_servers}
    caller_modules_importable()
    try:
        settings, kafka = load_settings(config, **overrides)
        schema_registry = load_schema_registry_settings(config)
        configure_logging(settings.log_format, settings.log_level)
        app = load_app(target)
        spec = load_topology(settings.topology)  # a missing topology is said before the cluster is asked
    except (KepError, ConsumerError) as exc:
        fail(str(exc))
    check_cluster(kafka)  # seconds, not minutes, when the cluster is not there
    try:
        worker = build_worker(app, settings, kafka, topology=spec, schema_registry=schema_registry)
    except (KepError, ConsumerError) as exc:
        fail(str(exc))
    server = None
    if settings.metrics_port:
        server = MetricsServer(worker.metrics.registry, worker.health, port=settings.metrics_port).start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop())
    try:
        worker.run()
    finally:
        if server is not None:
            server.stop()
