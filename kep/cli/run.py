"""``kep run module:app``: run a consumer group worker until SIGTERM/SIGINT, then drain, commit and leave."""

from __future__ import annotations

import gc
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Protocol

import structlog
import typer

from kep.broker import EMBEDDED_GROUP_SETTINGS, is_embedded
from kep.cli._common import BootstrapOption, TopologyOption, caller_modules_importable, check_cluster, fail
from kep.cli.delays import start_forwarder
from kep.cli.outbox import worker_relay
from kep.cli.schedules import start_in_worker
from kep.cli.supervise import Supervisor, announce, die_with_supervisor, process_count, supervised_index
from kep.consumers.app import App, load_app
from kep.consumers.dlq.progress import start_replay_progress
from kep.consumers.errors import AppError, ConsumerError
from kep.consumers.idempotency.factory import store_scheme
from kep.consumers.metrics import MetricsServer, MetricsServerError
from kep.consumers.runtime.build import build_worker, register_secrets
from kep.consumers.runtime.plan import group_topics
from kep.consumers.runtime.worker import Worker
from kep.consumers.settings import ConsumerSettings, load_schema_registry_settings, load_settings
from kep.logs import configure_logging
from kep.schemas.errors import KepError
from kep.topology.loader import load_topology
from kep.topology.model import Topology
from kep.topology.settings import KafkaSettings

log = structlog.get_logger("kep.run")


#: Allocations between two collections of the youngest generation (Python's default: 700).
GC_GEN0_THRESHOLD = 10_000


def _tune_gc() -> None:
    """Garbage collection for a long-running worker process: what start-up made (modules, the app, the
    topology) is moved out of the collector's sight for good (``gc.freeze``), and the youngest generation is
    collected every 10,000 allocations instead of 700. A worker makes several objects per message that live
    for milliseconds; with the defaults the collector ran about 3,000 times per 400,000 events and took 16 %
    of the process's time (2.6 s), with these 0.8 s. ``kep run`` owns its process; a service that runs a
    ``Worker`` itself keeps its own settings."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def command(
    target: Annotated[str, typer.Argument(help="The app to run, as module:attribute.", show_default=False)],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", envvar="KEP_CONFIG", help="Worker settings YAML file.")
    ] = None,
    bootstrap_servers: BootstrapOption = None,
    topology: TopologyOption = None,
    group: Annotated[
        str | None, typer.Option("--group", "-g", help="Override the app's consumer group.")
    ] = None,
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
    processes: Annotated[
        str | None,
        typer.Option(
            "--processes",
            help="Worker processes in the group: a number, or auto (one per usable core, at most the "
            "group's partitions; the default).",
        ),
    ] = None,
    log_format: Annotated[str | None, typer.Option("--log-format", help="auto, console or json.")] = None,
    delay_forwarder: Annotated[
        bool,
        typer.Option(
            "--delay-forwarder/--no-delay-forwarder",
            envvar="KEP_DELAY_FORWARDER",
            help="Also forward delayed events when the topology has delays: (docs/delayed-events.md).",
        ),
    ] = True,
    schedules: Annotated[
        bool,
        typer.Option(
            "--schedules/--no-schedules", envvar="KEP_SCHEDULES", help="Run the topology's schedules."
        ),
    ] = True,
) -> None:
    """Run a consumer group worker: at-least-once, idempotent, with retries and dead letters."""
    overrides: dict[str, Any] = {
        "topology": topology,
        "group": group,
        "metrics_port": metrics_port,
        "metrics_host": metrics_host,
        "idempotency_store": idempotency_store,
        "concurrency": concurrency,
        "processes": processes,
        "log_format": log_format,
    }
    if bootstrap_servers:
        overrides["kafka"] = {"bootstrap_servers": bootstrap_servers}
    caller_modules_importable()  # so `kep run mymodule:app` finds the caller's modules
    try:
        settings, kafka = load_settings(config, **overrides)
        schema_registry = load_schema_registry_settings(config)
        register_secrets(settings, kafka)
        configure_logging(settings.log_format, settings.log_level)
        app = load_app(target)
        spec = load_topology(settings.topology)  # a missing topology is said before the cluster is asked
    except (KepError, ConsumerError) as exc:
        fail(str(exc))
    check_cluster(kafka)  # seconds, not minutes, when the cluster is not there
    index = supervised_index()
    if index is None:
        count = _processes(app, settings, spec)
        if count > 1:
            given = {
                "--config": config,
                "--bootstrap-servers": bootstrap_servers,
                "--topology": topology,
                "--group": group,
                "--idempotency-store": idempotency_store,
                "--concurrency": concurrency,
                "--log-format": log_format,
                "--metrics-port": None if settings.metrics_port else 0,  # none served by the supervisor: none
            }
            argv = _child_argv(target, given)
            raise typer.Exit(_supervise(count, argv, settings, delays=delay_forwarder, schedules=schedules))
    else:
        die_with_supervisor()
    try:
        settings = _for_the_broker(settings, kafka)
        worker = build_worker(app, settings, kafka, topology=spec, schema_registry=schema_registry)
    except (KepError, ConsumerError) as exc:
        fail(str(exc))
    if not index:  # the first (or only) process runs what one per group is enough for
        _start_replay_progress(worker, kafka)
    companions = _start_companions(worker, spec, settings, kafka, delays=delay_forwarder, schedules=schedules)
    joining = _JoinReport(worker, kafka, settings).start()
    server = None
    if settings.metrics_port:
        # under a supervisor, on a loopback port of its own: the supervisor serves the configured one
        port, host = (settings.metrics_port, settings.metrics_host) if index is None else (0, "127.0.0.1")
        try:
            server = MetricsServer(worker.metrics.registry, worker.health, port=port, host=host).start()
        except MetricsServerError as exc:
            fail(str(exc))
    announce(server.port if server is not None else None)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop())
    _tune_gc()
    try:
        worker.run()
    except AppError as exc:  # a startup hook of the app failed: the worker never joined
        fail(str(exc))
    finally:
        joining.stop()
        for companion in companions:
            companion.stop()
        if server is not None:
            server.stop()


def _processes(app: App, settings: ConsumerSettings, topology: Topology) -> int:
    """Worker processes to run. ``auto`` with ``memory://`` is one: that store's keys and limits live in a
    process, so several would neither see each other's keys nor share a limit."""
    in_memory = store_scheme(settings.idempotency_store) == "memory"
    if settings.processes == "auto" and in_memory:
        return 1
    count = process_count(settings.processes, _partitions(app, settings, topology))
    if count > 1 and in_memory:
        log.warning(
            "several worker processes with the memory store: each keeps its own idempotency keys and limits",
            processes=count,
        )
    return count


def _partitions(app: App, settings: ConsumerSettings, topology: Topology) -> int | None:
    """Partitions of the group's main topics as the topology declares them (None when it does not say)."""
    _, topics = group_topics(app, settings.group or app.group, topology)
    try:
        return sum(topology.topic(name).partitions for name in topics) or None
    except KepError:  # a topic the topology does not declare
        return None


def _child_argv(target: str, given: Mapping[str, object]) -> list[str]:
    """``kep run`` as a worker process runs it: the options this one was ``given`` (None: not given; the
    environment and the settings file it inherits say the rest)."""
    argv = [sys.executable, "-m", "kep.cli.main", "run", target]
    for option, value in given.items():
        if value is not None:
            argv += [option, str(value)]
    return argv


def _supervise(
    count: int, argv: list[str], settings: ConsumerSettings, *, delays: bool, schedules: bool
) -> int:
    """Run ``count`` worker processes under a ``Supervisor`` (``kep.cli.supervise``) until SIGTERM/SIGINT;
    only process 0 runs the companions. The exit code."""

    def child_argv(index: int) -> list[str]:
        first = index == 0
        return [
            *argv,
            "--delay-forwarder" if delays and first else "--no-delay-forwarder",
            "--schedules" if schedules and first else "--no-schedules",
        ]

    def child_env(index: int) -> dict[str, str]:
        return {} if index == 0 else {"KEP_OUTBOX_RELAY": "false"}

    stop_timeout_s = settings.drain_timeout_s + settings.revoke_timeout_s + 15
    supervisor = Supervisor(count, child_argv, child_env, stop_timeout_s=stop_timeout_s)
    server = None
    if settings.metrics_port:
        try:
            server = MetricsServer(
                supervisor.registry, supervisor, port=settings.metrics_port, host=settings.metrics_host
            ).start()
        except MetricsServerError as exc:
            fail(str(exc))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: supervisor.stop())
    try:
        return supervisor.run()
    finally:
        if server is not None:
            server.stop()


class _Companion(Protocol):
    def stop(self) -> None: ...


def _start_companions(
    worker: Worker,
    topology: Topology,
    settings: ConsumerSettings,
    kafka: KafkaSettings,
    *,
    delays: bool,
    schedules: bool,
) -> list[_Companion]:
    """What runs beside the worker, each on its own thread with its own clients, when the topology or the store
    asks for it: the delay forwarder (``delays:``), the scheduler (``schedules:``) and the outbox relay (an SQL
    store). Each is stopped after the worker has drained."""
    registry = worker.metrics.registry
    try:
        started = [
            start_forwarder(topology, kafka, settings.group_config(), registry) if delays else None,
            start_in_worker(topology, kafka, registry) if schedules else None,
            worker_relay(settings, kafka, registry),  # KEP_OUTBOX_RELAY=false turns it off
        ]
    except KepError as exc:
        fail(str(exc))
    return [companion for companion in started if companion is not None]


def _start_replay_progress(worker: Worker, kafka: KafkaSettings) -> None:
    """Start the replay-progress group of each of the group's dead-letter topics (the dashboard's dead letters
    waiting), in the background: the worker never waits for it."""
    spec = worker.plan.group_spec
    topics = [t for source in worker.plan.main_topics if spec is not None and (t := spec.dlq_topic(source))]
    if topics:
        threading.Thread(
            target=start_replay_progress, args=(kafka, topics), name="kep-replay-progress", daemon=True
        ).start()


def _for_the_broker(settings: ConsumerSettings, kafka: KafkaSettings) -> ConsumerSettings:
    """On the embedded broker a group join takes about half of ``session.timeout.ms``: unless the session
    timeout was set (option, file or ``KEP_SESSION_TIMEOUT_MS``), use ``EMBEDDED_GROUP_SETTINGS`` there."""
    if "session_timeout_ms" in settings.model_fields_set or not is_embedded(kafka.bootstrap_servers):
        return settings
    update = {k: v for k, v in EMBEDDED_GROUP_SETTINGS.items() if k not in settings.model_fields_set}
    log.info(
        "embedded broker: shorter group session so the join takes seconds, not half a minute",
        **{k.replace("_", "."): v for k, v in update.items()},
    )
    return settings.model_copy(update=update)


class _JoinReport:
    """Says what the worker waits for until it owns partitions: at once, then every ``every_s`` seconds."""

    def __init__(
        self,
        worker: Worker,
        kafka: KafkaSettings,
        settings: ConsumerSettings,
        every_s: float = 5.0,
        say: Callable[..., object] | None = None,
    ) -> None:
        self.worker, self.kafka, self.settings, self.every_s = worker, kafka, settings, every_s
        self._say = say if say is not None else log.info
        self._done = threading.Event()

    def start(self) -> _JoinReport:
        threading.Thread(target=self._run, name="kep-join-report", daemon=True).start()
        return self

    def stop(self) -> None:
        self._done.set()

    def _run(self) -> None:
        plan, started = self.worker.plan, time.monotonic()
        session_s = self.settings.session_timeout_ms / 1000
        self._say(
            "joining the consumer group: waiting for its coordinator to assign partitions",
            group=plan.group,
            bootstrap_servers=self.kafka.bootstrap_servers,
            topics=list(plan.subscriptions),
            join_takes_up_to_s=session_s,
        )
        while not self._done.wait(self.every_s):
            ready, reason = self.worker.health.ready()
            if ready or self.worker.stopping:
                return
            self._say(
                "still joining the consumer group",
                group=plan.group,
                waited_s=round(time.monotonic() - started),
                waiting_for="the group coordinator to assign partitions"
                if "partitions" in reason or "connected" in reason
                else reason,
                session_timeout_s=session_s,
                hint="client errors, if any, are logged as 'kafka client error'",
            )
