"""``kep lag-exporter``: the standalone lag exporter, until SIGTERM or SIGINT (then exit 0).

Serves ``/metrics``, ``/healthz``, ``/readyz``, ``/groups`` and ``/groups/{group}`` on ``--metrics-port``.
"""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from kep.cli._common import BootstrapOption, IsolationOption, console, fail, kafka_settings
from kep.cli._service import LogFormatOption
from kep.cli.lag import isolation_level
from kep.consumers.lag import LagError, LagExporter
from kep.consumers.metrics import MetricsServerError
from kep.logs import configure_logging


def command(
    bootstrap_servers: BootstrapOption = None,
    port: Annotated[
        int,
        typer.Option(
            "--metrics-port",
            envvar="KEP_LAG_EXPORTER_PORT",
            help="Port of /metrics, /groups, /healthz and /readyz (as kep run's --metrics-port).",
        ),
    ] = 9401,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "0.0.0.0",
    group: Annotated[
        str | None,
        typer.Option(
            "--group",
            "-g",
            help="Only groups whose id matches this regular expression in full (the deployment's own setting).",
        ),
    ] = None,
    interval: Annotated[float, typer.Option("--interval", min=0.1, help="Seconds between polls.")] = 10.0,
    window: Annotated[float, typer.Option("--window", min=0.1, help="Status window in seconds.")] = 120.0,
    isolation: IsolationOption = "read_committed",
    log_format: LogFormatOption = "auto",
) -> None:
    """Export consumer-group lag (messages, seconds, Burrow-style status) for Prometheus and as JSON."""
    configure_logging(log_format, "INFO")
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        exporter = LagExporter(
            kafka_settings(bootstrap_servers),
            group_filter=group,
            poll_interval_s=interval,
            window_s=window,
            isolation_level=isolation_level(isolation),
        )
    except LagError as exc:
        fail(str(exc))
    try:
        with exporter:
            server = exporter.serve(port=port, host=host)
            exporter.start()
            console.print(f"lag exporter on {server.url} (/metrics, /groups); polling every {interval:g}s")
            stop.wait()
    except (LagError, MetricsServerError) as exc:
        fail(str(exc))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.print("lag exporter stopped")
