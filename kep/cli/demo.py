"""``kep demo``: a service's whole path on a laptop, with nothing installed but kep and its embedded broker.

Starts the embedded broker, creates the topology's topics (``--topology`` or ``KEP_TOPOLOGY``), runs the
consumer group apps given with ``--app`` with the real runtime while the first one's ``/metrics`` are served,
publishes sample events of every topic's event types (``KEP_EXAMPLE_FAILURE_RATE`` is set from
``--failure-rate`` for handlers that fail on purpose), waits until every group has handled and committed
everything, then prints what was produced and handled per partition and the lag table. Exits 1 if any event
is missing, and stops by itself at a hard deadline. ``make demo`` runs it on the shop example
(``examples/shop``).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from kep.cli._common import TopologyOption, console, err_console, fail
from kep.cli.lag import render as lag_render
from kep.consumers.app import App
from kep.consumers.lag import LagSnapshot
from kep.consumers.metrics import MetricsServer
from kep.consumers.runtime.worker import Worker
from kep.logs import configure_logging
from kep.producers import DeliveryError, DeliveryReport, EventProducer, iter_sample_events
from kep.schemas.codec import EventCodec, codec_for
from kep.schemas.errors import KepError
from kep.schemas.registry import LocalSchemaRegistry
from kep.topology import KafkaSettings, Topology, load_topology, schema_registry
from kep.topology.loader import NO_TOPOLOGY, default_topology_path

if TYPE_CHECKING:
    from kep.broker import EmbeddedBroker

TopicPartitionKey = tuple[str, int]


@dataclass
class Traffic:
    """Events per topic and partition, and the idempotency keys seen, on one side (produced or consumed)."""

    per_partition: Counter[TopicPartitionKey] = field(default_factory=Counter)
    keys: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)


class Deadline:
    """The demo's time budget. ``remaining()`` for loops; ``watchdog()`` ends the process if it is overrun."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._end - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0

    @contextmanager
    def watchdog(self, broker: EmbeddedBroker) -> Iterator[None]:
        """Past the deadline plus a grace of 5 s, stop the broker and exit with code 3."""

        def expire() -> None:
            err_console.print(f"[red]error:[/red] demo overran its {self.seconds:.0f}s deadline; stopping")
            broker.stop()
            os._exit(3)

        timer = threading.Timer(max(self.remaining(), 0) + 5.0, expire)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()


def start_broker() -> EmbeddedBroker:
    """Start the embedded broker (Tansu) on a free loopback port (``BrokerError`` says how to install it)."""
    from kep.broker import EmbeddedBroker

    broker = EmbeddedBroker().start()
    console.print(f"embedded broker ready on {broker.bootstrap_servers}")
    return broker


def apply_topology(topology: Topology, kafka: KafkaSettings) -> None:
    """Create every topic of the topology (source, retry and dead-letter topics)."""
    from kep.topology import admin

    plan = admin.plan(topology, kafka)
    admin.apply(plan, kafka)
    console.print(
        f"topology applied: {len(topology.topics)} declared topics and their retry/dead-letter topics"
    )


def produce(
    kafka: KafkaSettings,
    topology: Topology,
    registry: LocalSchemaRegistry,
    codec: EventCodec,
    count: int,
    deadline: Deadline,
) -> Traffic:
    """Publish ``count`` sample events, cycling through every event type of every declared topic, and wait
    for every ack."""
    produced = Traffic()

    def on_delivery(report: DeliveryReport | None, error: DeliveryError | None) -> None:
        if report is not None:
            produced.per_partition[(report.topic, report.partition)] += 1
        else:
            produced.failures.append(str(error))

    targets = [(spec.name, registry.model(name)) for spec in topology.topics for name in spec.value_schema]
    if not targets:
        raise KepError("the topology declares no topic with a value_schema: the demo has nothing to send")
    events = iter_sample_events([model for _, model in targets], start=datetime.now(UTC))
    start = time.monotonic()
    with EventProducer(kafka, topology, codec=codec) as producer:
        for index in range(count):
            event = next(events)
            producer.publish(event, topic=targets[index % len(targets)][0], on_delivery=on_delivery)
            produced.keys.add(event.idempotency_key())
        producer.flush(max(deadline.remaining(), 1.0))
    elapsed = time.monotonic() - start
    console.print(f"produced {sum(produced.per_partition.values())} events in {elapsed:.2f}s")
    return produced


@dataclass
class Workers:
    """The groups running in this process, and the HTTP server of the first one."""

    workers: list[Worker]
    threads: list[threading.Thread]
    server: MetricsServer | None

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        for thread in self.threads:
            thread.join(30)
        if self.server is not None:
            self.server.stop()


def load_apps(targets: list[str]) -> list[App]:
    """Import each ``module:app`` from the current directory, as ``kep run`` does."""
    from kep.consumers.app import load_app

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return [load_app(target) for target in targets]


def start_workers(kafka: KafkaSettings, topology: Topology, apps: list[App], metrics_port: int) -> Workers:
    """Run every app in a thread; serve the first one's /metrics, /healthz and /readyz."""
    from kep.consumers.runtime.build import build_worker
    from kep.consumers.settings import ConsumerSettings

    settings = ConsumerSettings(
        session_timeout_ms=6000, heartbeat_interval_ms=1000, fetch_wait_max_ms=10, commit_interval_s=0.5,
        idempotency_store="memory://", metrics_port=0,
    )  # fmt: skip
    workers = [build_worker(app, settings, kafka, topology=topology) for app in apps]
    threads = [threading.Thread(target=w.run, name=f"kep-demo-{w.plan.group}", daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    server = MetricsServer(workers[0].metrics.registry, workers[0].health, port=metrics_port).start()
    groups = ", ".join(w.plan.group for w in workers)
    console.print(f"groups {groups} running; {workers[0].plan.group} serves {server.url}/metrics")
    return Workers(workers, threads, server)


def readers_of(workers: list[Worker]) -> dict[str, list[str]]:
    """Topic -> the groups running here that read it, in the order the apps were given."""
    readers: dict[str, list[str]] = {}
    for worker in workers:
        for topic in worker.plan.main_topics:
            readers.setdefault(topic, []).append(worker.plan.group)
    return readers


def wait_until_handled(
    kafka: KafkaSettings, produced: Traffic, readers: dict[str, list[str]], deadline: Deadline
) -> LagSnapshot | None:
    """Poll the groups' lag until every partition that received events is committed to its end."""
    import re

    from kep.consumers.lag import LagMonitor

    groups = sorted({group for names in readers.values() for group in names})
    snapshot = None
    with LagMonitor(kafka, group_filter="^(" + "|".join(re.escape(g) for g in groups) + ")$") as monitor:
        while not deadline.expired():
            snapshot = monitor.poll_or_failed(snapshot)
            if _caught_up(snapshot, produced, readers):
                break
            threading.Event().wait(0.5)
    return snapshot


def _caught_up(snapshot: LagSnapshot, produced: Traffic, readers: dict[str, list[str]]) -> bool:
    committed = {(g.group, p.topic, p.partition): p for g in snapshot.groups for p in g.partitions}
    for (topic, partition), count in produced.per_partition.items():
        for group in readers.get(topic, ()):
            lag = committed.get((group, topic, partition))
            if lag is None or lag.committed is None or lag.committed < count or (lag.lag_messages or 0) > 0:
                return False
    return True


def handled(snapshot: LagSnapshot | None, readers: dict[str, list[str]]) -> Traffic:
    """What the first group reading each topic committed, per partition."""
    consumed = Traffic()
    for group in snapshot.groups if snapshot else ():
        for p in group.partitions:
            mine = group.group == next(iter(readers.get(p.topic, [])), None)
            if mine and p.committed is not None:
                consumed.per_partition[(p.topic, p.partition)] += p.committed
    return consumed


def report(produced: Traffic, consumed: Traffic) -> int:
    """Print the per-partition table; the number of produced events that were never consumed."""
    table = Table(title="kep demo", title_justify="left")
    for name, justify in (
        ("topic", "left"),
        ("partition", "right"),
        ("produced", "right"),
        ("handled", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for topic, partition in sorted(set(produced.per_partition) | set(consumed.per_partition)):
        key = (topic, partition)
        table.add_row(
            topic, str(partition), str(produced.per_partition[key]), str(consumed.per_partition[key])
        )
    missing = sum(max(0, n - consumed.per_partition[k]) for k, n in produced.per_partition.items())
    table.add_section()
    table.add_row(
        "total", "", str(sum(produced.per_partition.values())), str(sum(consumed.per_partition.values()))
    )
    console.print(table)
    for failure in (produced.failures + consumed.failures)[:5]:
        err_console.print(f"[red]failure:[/red] {failure}", highlight=False)
    console.print(f"missing: {missing}")
    return missing


def command(
    apps: Annotated[
        list[str] | None,
        typer.Option("--app", "-a", help="A consumer group app to run, module:attribute; repeatable."),
    ] = None,
    topology_file: TopologyOption = None,
    events: Annotated[int, typer.Option("--count", "-n", min=1, help="Sample events to produce.")] = 5000,
    deadline_s: Annotated[float, typer.Option("--deadline", help="Give up after this many seconds.")] = 50.0,
    metrics_port: Annotated[
        int, typer.Option("--metrics-port", help="Port of billing's /metrics while the demo runs (0: any).")
    ] = 9400,
    failure_rate: Annotated[
        float,
        typer.Option(
            "--failure-rate",
            min=0.0,
            max=1.0,
            help="Sets KEP_EXAMPLE_FAILURE_RATE: the share of first attempts the example handlers fail.",
        ),
    ] = 0.02,
) -> None:
    """Run a service on the embedded broker: its topology, sample events, its consumer groups, retries, lag."""
    source = topology_file or default_topology_path()
    if source is None:
        fail(NO_TOPOLOGY)
    if not apps:
        fail(
            "no apps: pass --app module:attribute for each consumer group to run (e.g. --app shop.billing:app)"
        )
    os.environ.setdefault("KEP_EXAMPLE_FAILURE_RATE", str(failure_rate))
    configure_logging("console", os.environ.get("KEP_LOG_LEVEL", "ERROR"))  # the failures are on purpose
    try:
        topology = load_topology(source, check_schemas=True)
        registry = schema_registry(topology)
        loaded = load_apps(apps)
    except KepError as exc:
        fail(str(exc))
    deadline = Deadline(deadline_s)
    try:
        broker = start_broker()
    except KepError as exc:
        fail(str(exc), code=1)  # fail() shows it as text: the message names kep-kafka[embedded]
    workers: Workers | None = None
    try:
        with deadline.watchdog(broker):
            kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
            apply_topology(topology, kafka)
            workers = start_workers(kafka, topology, loaded, _free_or(metrics_port))
            readers = readers_of(workers.workers)
            codec = codec_for(registry=registry)
            produced = produce(kafka, topology, registry, codec, events, deadline)
            snapshot = wait_until_handled(kafka, produced, readers, deadline)
            missing = report(produced, handled(snapshot, readers))
            if snapshot is not None:
                console.print(lag_render(snapshot))
            for worker in workers.workers:
                retried = _retried(worker)
                console.print(
                    f"{worker.plan.group}: {retried:.0f} failed attempts went through its retry topics"
                )
    except KepError as exc:
        fail(str(exc), code=1)
    finally:
        if workers is not None:
            workers.stop()
        broker.stop()
    if missing or produced.failures:
        fail(f"{missing} event(s) produced but not handled, {len(produced.failures)} failed to send", code=1)
    console.print("[green]demo ok[/green]: every event produced was handled and committed by its groups")


def _retried(worker: Worker) -> float:
    """Records the worker sent to its retry topics (``kep_messages_retried_total``, every label)."""
    return sum(
        sample.value
        for metric in worker.metrics.registry.collect()
        for sample in metric.samples
        if sample.name == "kep_messages_retried_total"
    )


def _free_or(port: int) -> int:
    """``port`` when it is free (or 0), else 0: the server then picks one and prints it."""
    import socket

    if port == 0:
        return 0
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return 0
    return port
