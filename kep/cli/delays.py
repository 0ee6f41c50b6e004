"""``kep delays``: the delay forwarder on its own (``kep run`` also runs one when the topology has ``delays:``),
and the delayed events still waiting.

``start_forwarder`` is what ``kep run`` calls; ``kep delays run`` runs the same forwarder until SIGTERM/SIGINT;
``kep delays ls`` lists what waits in the tiers, soonest due first.
"""

from __future__ import annotations

import threading
import time
from typing import Annotated, Any

import structlog
import typer
from rich.table import Table
from rich.text import Text

from kep.broker import EMBEDDED_GROUP_SETTINGS, is_embedded
from kep.cli._common import (
    BootstrapOption,
    JsonOption,
    TopologyOption,
    cluster_settings,
    console,
    fail,
    key_text,
    plain,
    print_json,
    span,
)
from kep.cli._service import (
    LogFormatOption,
    MetricsHostOption,
    MetricsPortOption,
    loop_health,
    serve_until_signalled,
)
from kep.consumers.delays import DelayForwarder
from kep.consumers.delays.pending import PendingDelay, read_pending
from kep.consumers.dlq.show import iso_ms
from kep.logs import configure_logging
from kep.schemas.errors import KepError
from kep.topology.loader import load_topology
from kep.topology.model import Topology
from kep.topology.settings import KafkaSettings

app = typer.Typer(
    help="Delayed events: the forwarder that hands them on when due, and what waits in the tiers.",
    no_args_is_help=True,
)
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


@app.command("ls")
def list_pending(
    bootstrap_servers: BootstrapOption = None,
    topology: TopologyOption = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=0, max=10_000, help="Records to list, soonest due first.")
    ] = 20,
    as_json: JsonOption = False,
) -> None:
    """The delayed events still waiting in the delay tiers: per tier how many and when due, then the soonest.

    Read from the forwarder group's committed offsets (never committed here): a record handed on less than a
    commit interval (0.5 s) ago may still be listed."""
    try:
        spec = load_topology(topology)
        if spec.delays is None:
            fail("the topology has no delays: section (see docs/delayed-events.md)")
        now_ms = time.time_ns() // 1_000_000
        pending = read_pending(cluster_settings(bootstrap_servers), spec, now_ms=now_ms, limit=limit)
    except KepError as exc:  # an invalid topology, a tier topic missing, a broker that does not answer
        fail(str(exc))
    if as_json:
        print_json(
            {
                "count": pending.count,
                "unreadable": pending.unreadable,
                "by_destination": dict(pending.by_destination.most_common()),
                "tiers": [
                    {
                        "topic": t.topic,
                        "delay_seconds": t.delay_seconds,
                        "count": t.count,
                        "soonest_due": iso_ms(t.soonest_ms),
                        "latest_due": iso_ms(t.latest_ms),
                    }
                    for t in pending.tiers
                ],
                "soonest": [_record_dict(r) for r in pending.soonest],
            }
        )
        return
    tiers = Table(title=f"Delayed events waiting: {pending.count}")
    for column in ("tier", "count", "soonest due", "latest due"):
        tiers.add_column(column, justify="right" if column == "count" else "left", overflow="fold")
    for t in pending.tiers:
        tiers.add_row(
            plain(t.topic),
            Text(str(t.count)),
            Text(iso_ms(t.soonest_ms) or ""),
            Text(iso_ms(t.latest_ms) or ""),
        )
    console.print(tiers)
    if not pending.soonest:
        return
    records = Table(title=f"Soonest due ({len(pending.soonest)} of {pending.count})")
    for column in ("due", "in", "destination", "event type", "event id", "key", "where"):
        records.add_column(column, overflow="fold")
    for r in pending.soonest:
        due = (
            Text(iso_ms(r.due_ms) or "")
            if r.due_ms is not None
            else plain(f"unreadable: {r.problem}", "yellow")
        )
        wait = "" if r.due_ms is None else span(max(0, r.due_ms - now_ms) / 1000)
        records.add_row(
            due,
            Text(wait),
            plain(r.destination or ""),
            plain(r.event_type or ""),
            plain(r.event_id or ""),
            plain(key_text(r.key)),
            plain(f"{r.tier}[{r.partition}]@{r.offset}"),
        )
    console.print(records)


def _record_dict(record: PendingDelay) -> dict[str, Any]:
    return {
        "due": iso_ms(record.due_ms),
        "due_ms": record.due_ms,
        "destination": record.destination,
        "event_type": record.event_type,
        "event_id": record.event_id,
        "key": key_text(record.key),
        "tier": record.tier,
        "partition": record.partition,
        "offset": record.offset,
        "problem": record.problem,
    }
