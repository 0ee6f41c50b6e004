"""``kep run module:app``: run a consumer group worker until SIGTERM/SIGINT, then drain, commit and leave."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from kep.cli._common import BootstrapOption, TopologyOption, fail
from kep.consumers.app import load_app
from kep.consumers.errors import ConsumerError
from kep.consumers.metrics import MetricsServer, MetricsServerError
from kep.consumers.runtime.build import build_worker, register_secrets
from kep.consumers.settings import load_settings
from kep.logs import configure_logging
from kep.schemas.errors import KepError


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
    metrics_host: Annotated[
        str | None,
        typer.Option("--metrics-host", help="Address the metrics server listens on (default 0.0.0.0)."),
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
        "metrics_host": metrics_host,
        "idempotency_store": idempotency_store,
        "concurrency": concurrency,
        "log_format": log_format,
    }
    if bootstrap_servers:
        overrides["kafka"] = {"bootstrap_servers": bootstrap_servers}
    try:
        settings, kafka = load_settings(config, **overrides)
        register_secrets(settings, kafka)
        configure_logging(settings.log_format, settings.log_level)
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())  # so `kep run mymodule:app` finds the caller's modules
        worker = build_worker(load_app(target), settings, kafka)
    except (KepError, ConsumerError) as exc:
        fail(str(exc))
    server = None
    if settings.metrics_port:
        try:
            server = MetricsServer(
                worker.metrics.registry, worker.health, port=settings.metrics_port, host=settings.metrics_host
            ).start()
        except MetricsServerError as exc:
            fail(str(exc))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop())
    try:
        worker.run()
    finally:
        if server is not None:
            server.stop()
