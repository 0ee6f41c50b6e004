"""``kep delays``: the delay forwarder on its own (``kep run`` also runs one when the topology has ``delays:``).

``start_forwarder`` is what ``kep run`` calls; ``kep delays run`` runs the same forwarder until SIGTERM/SIGINT.
"""

from __future__ import annotations

import threading
from typing import Any

import structlog
import typer

from kep.broker import EMBEDDED_GROUP_SETTINGS, is_embedded
from kep.cli._common import BootstrapOption, TopologyOption, cluster_settings, console, fail
from kep.cli._service import (
    LogFormatOption,
    MetricsHostOption,
    MetricsPortOption,
    loop_health,
    serve_until_signalled,
)
from kep.consumers.delays import DelayForwarder
from kep.logs import configure_logging
from kep.schemas.errors import KepError
from kep.topology.loader import load_topology
from kep.topology.model import Topology
from kep.topology.settings import KafkaSettings

app = typer.Typer(help="Delayed events: the forwarder that hands them on when due.", no_args_is_help=True)
log = structlog.get_logger("kep.delays")


class RunningForwarder:
    """A forwarder on its thread; ``stop`` asks it to finish and waits (bounded)."""

    def __init__(self, forwarder: DelayForwarder, thread: threading.Thread) -> None:
        self.forwarder, self.thread = forwarder, thread

    def stop(self, timeout: float = 30.0) -> None:
        self.forwarder.stop()
        self.thread.join(timeout)


def start_forwarder(
    topology: Topology, kafka: KafkaSettings, group_config: dict[str, Any], registry: Any = None
) -> RunningForwarder | None:
    """Start a delay forwarder on its own thread when ``topology`` has ``delays:``; None otherwise."""
    if topology.delays is None:
        return None
    forwarder = DelayForwarder(topology, kafka, registry=registry, group_config=group_config)
    return RunningForwarder(forwarder, forwarder.start())


def _group_config(kafka: KafkaSettings) -> dict[str, Any]:
    if not is_embedded(kafka.bootstrap_servers):
        return {}
    return {
        "session.timeout.ms": EMBEDDED_GROUP_SETTINGS["session_timeout_ms"],
        "heartbeat.interval.ms": EMBEDDED_GROUP_SETTINGS["heartbeat_interval_ms"],
    }


@app.command("run")
def run_command(
    bootstrap_servers: BootstrapOption = None,
    topology: TopologyOption = None,
    metrics_port: MetricsPortOption = 0,
    metrics_host: MetricsHostOption = "0.0.0.0",
    log_format: LogFormatOption = "auto",
) -> None:
    """Run the delay forwarder of the topology's delays: section until SIGTERM or SIGINT."""
    configure_logging(log_format, "INFO")
    try:
        spec = load_topology(topology)
    except KepError as exc:
        fail(str(exc))
    if spec.delays is None:
        fail("the topology has no delays: section (see docs/delayed-events.md)")
    kafka = cluster_settings(bootstrap_servers)
    health = loop_health()
    forwarder = DelayForwarder(spec, kafka, group_config=_group_config(kafka), beat=health.beat)
    console.print(
        f"delay forwarder of {len(spec.delays.tiers)} tiers, group {spec.delays.group}", highlight=False
    )
    serve_until_signalled(
        forwarder.run,
        forwarder.stop,
        registry=forwarder.metrics.registry,
        health=health,
        port=metrics_port,
        host=metrics_host,
    )
