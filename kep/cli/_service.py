"""What the standalone loops share (``kep delays run``, ``kep schedules run``, ``kep outbox relay``): their
options, ``/metrics`` with ``/healthz`` and ``/readyz`` while they run, and a clean stop on SIGTERM or SIGINT."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Annotated

import typer
from prometheus_client import CollectorRegistry

from kep.cli._common import fail
from kep.consumers.metrics import Health, MetricsServer, MetricsServerError

MetricsPortOption = Annotated[
    int,
    typer.Option(
        "--metrics-port", envvar="KEP_METRICS_PORT", help="Port of /metrics, /healthz, /readyz (0: none)."
    ),
]
MetricsHostOption = Annotated[
    str,
    typer.Option("--metrics-host", envvar="KEP_METRICS_HOST", help="Address the metrics server listens on."),
]
LogFormatOption = Annotated[
    str, typer.Option("--log-format", envvar="KEP_LOG_FORMAT", help="auto, console or json.")
]


def loop_health() -> Health:
    """Health of a loop that is ready once it runs (its clients connect lazily) and idle by design: ``/healthz``
    stays live while the loop calls ``beat`` at least every ``Health.ttl_s``."""
    health = Health()
    health.connected(True)
    health.idle_by_design(True)
    return health


def serve_until_signalled(
    run: Callable[[], None],
    stop: Callable[[], None],
    *,
    registry: CollectorRegistry,
    health: Health,
    port: int,
    host: str,
) -> None:
    """Serve ``/metrics`` on ``port`` (0: none), make SIGTERM and SIGINT call ``stop``, ``run`` until it returns,
    then stop serving."""
    server = None
    if port:
        try:
            server = MetricsServer(registry, health, port=port, host=host).start()
        except MetricsServerError as exc:
            fail(str(exc))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop())
    try:
        run()
    finally:
        if server is not None:
            server.stop()
