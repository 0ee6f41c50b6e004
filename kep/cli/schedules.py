"""``kep schedules``: run the scheduler, list the schedules, fire one now, pause and resume (see docs/schedules.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kep.cli._common import (
    BootstrapOption,
    JsonOption,
    TopologyOption,
    cluster_settings,
    console,
    fail,
    plain,
    print_json,
)
from kep.cli._service import (
    LogFormatOption,
    MetricsHostOption,
    MetricsPortOption,
    loop_health,
    serve_until_signalled,
)
from kep.logs import configure_logging
from kep.schemas.errors import KepError
from kep.topology.loader import NO_TOPOLOGY, default_topology_path, load_topology
from kep.topology.model import ScheduleSpec, Topology
from kep.topology.settings import KafkaSettings

app = typer.Typer(
    help="Recurring events of the topology's schedules: run, ls, trigger, pause, resume.",
    no_args_is_help=True,
)
NameArgument = Annotated[str, typer.Argument(help="The schedule's name.", show_default=False)]


def _topology(path: Path | None) -> Topology:
    source = path or default_topology_path()
    if source is None:
        fail(NO_TOPOLOGY)
    try:
        topology = load_topology(source, check_schemas=True)  # schedules' fields checked against the schemas
    except KepError as exc:
        fail(str(exc))
    if not topology.schedules:
        fail(f"{source}: no schedules: the topology has no 'schedules:'")
    return topology


def _schedule(topology: Topology, name: str) -> ScheduleSpec:
    try:
        return topology.schedule(name)
    except KepError as exc:
        fail(str(exc))


def _connected(topology: Topology, bootstrap_servers: str | None) -> KafkaSettings:
    """The cluster's settings once it answers and has the state topic; exit 1 naming what is missing."""
    from kep.consumers.schedules import require_state_topic

    kafka = cluster_settings(bootstrap_servers)
    try:
        require_state_topic(kafka, topology.schedule_state.topic)
    except LookupError as exc:
        fail(str(exc), 1)
    return kafka


def _iso(ms_or_dt: int | datetime | None) -> str | None:
    if ms_or_dt is None:
        return None
    at = ms_or_dt if isinstance(ms_or_dt, datetime) else datetime.fromtimestamp(ms_or_dt / 1000, UTC)
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@app.command("run")
def run_command(
    topology: TopologyOption = None,
    bootstrap_servers: BootstrapOption = None,
    metrics_port: MetricsPortOption = 0,
    metrics_host: MetricsHostOption = "0.0.0.0",
    log_format: LogFormatOption = "auto",
) -> None:
    """Run the scheduler until SIGTERM/SIGINT: one replica of several leads and publishes each firing once."""
    from kep.consumers.schedules import Scheduler

    configure_logging(log_format, "INFO")
    spec = _topology(topology)
    kafka = _connected(spec, bootstrap_servers)
    health = loop_health()
    try:
        scheduler = Scheduler(spec, kafka, beat=health.beat)
    except KepError as exc:
        fail(str(exc))
    serve_until_signalled(
        scheduler.run,
        scheduler.stop,
        registry=scheduler.metrics.registry,
        health=health,
        port=metrics_port,
        host=metrics_host,
    )


@app.command("ls")
def ls_command(
    topology: TopologyOption = None, bootstrap_servers: BootstrapOption = None, as_json: JsonOption = False
) -> None:
    """List the schedules: cron, time zone, next and last firing (UTC), paused."""
    from kep.consumers.schedules import next_firing, read_state

    spec = _topology(topology)
    kafka = _connected(spec, bootstrap_servers)
    try:
        view = read_state(kafka, spec.schedule_state.topic)
    except TimeoutError as exc:
        fail(str(exc), 1)
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for schedule in spec.schedules:
        state = view.get(schedule.name)
        rows.append(
            {
                "name": schedule.name,
                "cron": schedule.cron,
                "timezone": schedule.timezone,
                "event": schedule.event,
                "topic": schedule.topic,
                "missed": schedule.missed,
                "next_firing": None if state.paused else _iso(next_firing(schedule, now)),
                "last_firing": None if state.baseline else _iso(state.last_fired_ms),
                "last_event_id": state.last_event_id,
                "paused": state.paused,
            }
        )
    if as_json:
        print_json({"schedules": rows})
        return
    table = Table(title="schedules", title_justify="left")
    for column in ("name", "cron", "timezone", "next firing", "last firing", "paused"):
        table.add_column(column, overflow="fold")
    for row in rows:
        cells = (
            row["name"],
            row["cron"],
            row["timezone"],
            row["next_firing"] or "",
            row["last_firing"] or "",
        )
        table.add_row(*(plain(cell) for cell in cells), "paused" if row["paused"] else "")
    console.print(table)


@app.command("trigger")
def trigger_command(
    name: NameArgument,
    topology: TopologyOption = None,
    bootstrap_servers: BootstrapOption = None,
    as_json: JsonOption = False,
) -> None:
    """Publish the schedule's event now, with an id of its own (scheduled firings are not affected)."""
    from kep.consumers.schedules import trigger_id
    from kep.producers.producer import EventProducer
    from kep.topology.loader import schema_registry

    spec = _topology(topology)
    schedule = _schedule(spec, name)
    kafka = cluster_settings(bootstrap_servers)
    event_id, now = trigger_id(), datetime.now(UTC)
    try:
        event = schedule.event_for(schema_registry(spec).model(schedule.event), event_id, now)
        with EventProducer(kafka, spec) as producer:
            report = producer.publish_and_wait(event, topic=schedule.topic, key=schedule.key)
    except KepError as exc:
        fail(str(exc), 1)
    result = {"schedule": schedule.name, "event_id": event_id, "topic": report.topic,
              "partition": report.partition, "offset": report.offset}  # fmt: skip
    if as_json:
        print_json(result)
        return
    console.print(
        plain(
            f"triggered {schedule.name}: event {event_id} at {report.topic}[{report.partition}]@{report.offset}"
        )
    )


def _set_paused(
    name: str, paused: bool, topology: Path | None, bootstrap_servers: str | None, as_json: bool
) -> None:
    from confluent_kafka import Producer

    from kep.consumers.schedules import paused_record

    spec = _topology(topology)
    schedule = _schedule(spec, name)
    kafka = _connected(spec, bootstrap_servers)
    key, value = paused_record(schedule.name, paused)
    producer = Producer({**kafka.as_librdkafka_dict(), "enable.idempotence": True, "acks": "all"})
    errors: list[object] = []
    producer.produce(
        spec.schedule_state.topic, value, key, on_delivery=lambda error, _msg: errors.append(error)
    )
    if producer.flush(30) or errors != [None]:
        fail(
            f"{'pause' if paused else 'resume'} {schedule.name}: not recorded: {errors or 'no acknowledgement'}",
            1,
        )
    if as_json:
        print_json({"schedule": schedule.name, "paused": paused})
        return
    console.print(plain(f"{schedule.name}: {'paused' if paused else 'resumed'}"))


@app.command("pause")
def pause_command(
    name: NameArgument,
    topology: TopologyOption = None,
    bootstrap_servers: BootstrapOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stop the schedule's firings (recorded in the state topic; whichever replica leads honours it)."""
    _set_paused(name, True, topology, bootstrap_servers, as_json)


@app.command("resume")
def resume_command(
    name: NameArgument,
    topology: TopologyOption = None,
    bootstrap_servers: BootstrapOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fire the schedule again from its next firing (firings due while paused are not fired)."""
    _set_paused(name, False, topology, bootstrap_servers, as_json)


class SchedulerThread:
    """A ``Scheduler`` on a thread of its own (``kep run`` with ``schedules:``); ``stop`` waits for it."""

    def __init__(self, scheduler: Any) -> None:
        import threading

        self.scheduler = scheduler
        self._thread = threading.Thread(target=self._run, name="kep-scheduler", daemon=True)

    def _run(self) -> None:
        import structlog

        try:
            self.scheduler.run()
        except Exception:  # a dead scheduler must be seen in the logs; the worker goes on
            structlog.get_logger("kep.schedules").exception("schedules: the scheduler stopped on an error")

    def start(self) -> SchedulerThread:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        self.scheduler.stop()
        self._thread.join(timeout_s)


def start_in_worker(topology: Topology, kafka: KafkaSettings, registry: Any) -> SchedulerThread | None:
    """``kep run``'s scheduler when the topology has ``schedules:``, its metrics on the worker's ``registry``;
    exit 1 when the state topic is missing, 2 when a schedule is not valid."""
    from kep.consumers.schedules import Scheduler, SchedulerMetrics, require_state_topic

    if not topology.schedules:
        return None
    try:
        require_state_topic(kafka, topology.schedule_state.topic)
    except LookupError as exc:
        fail(f"{exc} (or run with --no-schedules)", 1)
    try:
        scheduler = Scheduler(topology, kafka, metrics=SchedulerMetrics(registry))
    except KepError as exc:
        fail(str(exc))
    return SchedulerThread(scheduler).start()
