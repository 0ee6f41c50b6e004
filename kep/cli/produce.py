"""``kep produce TOPIC``: send generated sample events, or the events of a JSON-lines file, to a topic.

The event types are the topic's ``value_schema``; their models come from the topology's schemas (and
``KEP_SCHEMAS``): built from the ``.avsc``, or hand-written ones from the modules given with ``--import``.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kep.cli._common import (
    BootstrapOption,
    ImportOption,
    JsonOption,
    TopologyOption,
    cluster_settings,
    console,
    err_console,
    fail,
    import_modules,
    print_json,
)
from kep.producers import DeliveryError, DeliveryReport, EventProducer
from kep.producers.jsonl import BadLine, read_events
from kep.producers.sample import iter_sample_events
from kep.schemas.errors import KepError
from kep.schemas.events import Event
from kep.schemas.registry import LocalSchemaRegistry
from kep.topology.model import TopicSpec

_MAX_ERRORS_SHOWN = 5
_MAX_BAD_LINES_SHOWN = 20


@dataclass
class _Tally:
    """Delivery outcomes, filled by the producer's delivery callback."""

    sent: int = 0
    failed: int = 0
    per_partition: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def __call__(self, report: DeliveryReport | None, error: DeliveryError | None) -> None:
        if report is not None:
            self.sent += 1
            self.per_partition[report.partition] += 1
        else:
            self.failed += 1
            if len(self.errors) < _MAX_ERRORS_SHOWN:
                self.errors.append(str(error))


class _Pacer:
    """Keeps the send rate at or under ``rate`` events/s (0 = unlimited), serving callbacks while it waits."""

    def __init__(
        self, rate: float, poll: Callable[[float], object], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._poll = poll
        self._clock = clock
        self._start = clock()

    def wait_turn(self, index: int, stop: threading.Event) -> None:
        """Return once event number ``index`` (from 0) is due, or when ``stop`` is set."""
        if not self._interval:
            return
        due = self._start + index * self._interval
        while not stop.is_set():
            ahead = due - self._clock()
            if ahead <= 0:
                return
            self._poll(min(ahead, 0.2))


def _event_models(
    spec: TopicSpec, event_type: str | None, registry: LocalSchemaRegistry
) -> list[type[Event]]:
    carried = list(spec.value_schema)
    if event_type is not None:
        matches = [name for name in carried if name == event_type or name.rsplit(".", 1)[-1] == event_type]
        if not matches:
            fail(
                f"topic {spec.name!r} does not carry {event_type!r} events (it carries: {', '.join(carried)})"
            )
        carried = matches[:1]
    if not carried:
        fail(f"topic {spec.name!r} declares no value_schema, so kep does not know what to send to it")
    try:
        return [registry.model(name) for name in carried]
    except KepError as exc:
        fail(str(exc))


def _generated(models: list[type[Event]], count: int, seed: int) -> Iterator[Event]:
    for index, event in enumerate(iter_sample_events(models, seed)):
        if index >= count:
            return
        yield event


@dataclass
class _BadLines:
    """Lines of the input file that are not valid events: all counted, the first few kept to show."""

    count: int = 0
    shown: list[BadLine] = field(default_factory=list)

    def add(self, line: BadLine) -> None:
        self.count += 1
        if len(self.shown) < _MAX_BAD_LINES_SHOWN:
            self.shown.append(line)


def _from_file(path: Path, model: type[Event], bad: _BadLines, *, strict: bool) -> Iterator[Event]:
    """The valid events of ``path``; with ``strict``, none at all when any line is bad."""
    if strict:
        for _, item in read_events(path, model):
            if isinstance(item, BadLine):
                bad.add(item)
        if bad.count:
            return
    for _, item in read_events(path, model):
        if isinstance(item, BadLine):
            bad.add(item)
        else:
            yield item


def _send_all(
    producer: EventProducer,
    topic: str,
    events: Iterator[Event],
    total: int | None,
    rate: float,
    tally: _Tally,
    *,
    show_progress: bool = True,
    deliver_at: datetime | None = None,
    delay: float | None = None,
) -> int:
    """Publish every event (paced, with a progress bar) until done or SIGINT/SIGTERM; the number published."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    pacer = _Pacer(rate, producer.poll)
    published = 0
    columns = (TextColumn("[bold]producing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=False, disable=not show_progress) as progress:
            task = progress.add_task("produce", total=total)
            for event in events:
                if stop.is_set():
                    break
                pacer.wait_turn(published, stop)
                producer.publish(event, topic=topic, on_delivery=tally, deliver_at=deliver_at, delay=delay)
                published += 1
                if published % 1000 == 0 or rate:
                    progress.update(task, completed=published)
            progress.update(task, completed=published)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return published


def _summary(topic: str, published: int, tally: _Tally, bad: _BadLines, seconds: float) -> Table:
    table = Table(title=f"kep produce {topic}", title_justify="left")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("published", str(published))
    table.add_row("acknowledged", str(tally.sent))
    table.add_row("failed", str(tally.failed))
    if bad.count:
        table.add_row("bad lines", str(bad.count))
    for partition in sorted(tally.per_partition):
        table.add_row(f"partition {partition}", str(tally.per_partition[partition]))
    table.add_row("events/s", f"{tally.sent / seconds:,.0f}" if seconds > 0 else "-")
    return table


def _summary_dict(
    topic: str, published: int, tally: _Tally, bad: _BadLines, seconds: float
) -> dict[str, Any]:
    return {
        "topic": topic,
        "published": published,
        "acknowledged": tally.sent,
        "failed": tally.failed,
        "bad_lines": bad.count,
        "per_partition": {str(p): n for p, n in sorted(tally.per_partition.items())},
        "events_per_s": round(tally.sent / seconds, 1) if seconds > 0 else None,
    }


def command(
    topic: Annotated[str, typer.Argument(help="Topic to publish to; must be in the topology.")],
    count: Annotated[
        int, typer.Option("--count", "-n", min=0, help="Generated sample events to send.")
    ] = 100,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="JSON-lines file: one event per line (instead of --count)."),
    ] = None,
    event_type: Annotated[
        str | None, typer.Option("--event-type", help="Event type (Avro name, or its last part).")
    ] = None,
    rate: Annotated[float, typer.Option("--rate", min=0, help="Cap in events/s; 0 = unlimited.")] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generated events.")] = 0,
    strict: Annotated[
        bool, typer.Option("--strict", help="With --file: send nothing if any line is bad.")
    ] = False,
    bootstrap_servers: BootstrapOption = None,
    topology_file: TopologyOption = None,
    registry_url: Annotated[
        str | None,
        typer.Option("--registry-url", envvar="KEP_SCHEMA_REGISTRY_URL", help="Confluent schema registry."),
    ] = None,
    imports: ImportOption = None,
    as_json: JsonOption = False,
    delay: Annotated[
        str | None,
        typer.Option(
            "--delay", help="Handle each event this long after it is sent, e.g. 10m (needs delays:)."
        ),
    ] = None,
    deliver_at: Annotated[
        str | None,
        typer.Option(
            "--deliver-at", help="Handle the events no earlier than this ISO 8601 time with a zone."
        ),
    ] = None,
) -> None:
    """Send COUNT generated events, or the events of a JSON-lines file, to TOPIC.

    A bad line in --file is reported with its file, line number and field; the other lines are still sent
    and the command exits 1 at the end. With --strict, the file is checked first and nothing is sent if any
    line is bad.
    """
    from kep.schemas.codec import codec_for
    from kep.topology import load_topology, schema_registry

    import_modules(imports)
    delay_s, at = _delay_options(delay, deliver_at)
    try:
        topology = load_topology(topology_file)
        spec = topology.topic(topic)
        registry = schema_registry(topology)
        codec = codec_for(registry_url, registry)
    except KepError as exc:
        fail(str(exc))
    models = _event_models(spec, event_type, registry)
    bad = _BadLines()
    if file is not None:
        if not file.is_file():
            fail(f"{file}: no such file")
        if len(models) != 1:
            fail(f"topic {topic!r} carries several event types; pass --event-type with --file")
        events, total = _from_file(file, models[0], bad, strict=strict), None
    else:
        events, total = _generated(models, count, seed), count
    tally = _Tally()
    start = time.monotonic()
    try:
        with EventProducer(cluster_settings(bootstrap_servers), topology, codec=codec) as producer:
            published = _send_all(
                producer,
                topic,
                events,
                total,
                rate,
                tally,
                show_progress=not as_json,
                deliver_at=at,
                delay=delay_s,
            )
            producer.flush(30)
    except KepError as exc:  # ProducerError, or the codec's (a schema registry that does not answer)
        fail(str(exc), code=1)
    finally:
        if (close_codec := getattr(codec, "close", None)) is not None:
            close_codec()
    seconds = time.monotonic() - start
    if as_json:
        print_json(_summary_dict(topic, published, tally, bad, seconds))
    else:
        console.print(_summary(topic, published, tally, bad, seconds))
    _exit_on_problems(file, published, tally, bad, strict=strict)


def _delay_options(delay: str | None, deliver_at: str | None) -> tuple[float | None, datetime | None]:
    """``--delay`` in seconds and ``--deliver-at`` as an aware datetime; exit 2 naming the bad value."""
    from kep.topology.durations import parse_duration
    from kep.topology.errors import DurationError

    if delay is not None and deliver_at is not None:
        fail("pass --delay or --deliver-at, not both", code=2)
    if delay is not None:
        try:
            return parse_duration(delay), None
        except DurationError as exc:
            fail(f"--delay: {exc}", code=2)
    if deliver_at is not None:
        try:
            at = datetime.fromisoformat(deliver_at)
        except ValueError:
            fail(
                f"--deliver-at {deliver_at!r} is not an ISO 8601 time like 2030-01-01T09:00:00+00:00", code=2
            )
        if at.tzinfo is None:
            fail(f"--deliver-at {deliver_at!r} has no time zone; add one, e.g. Z or +02:00", code=2)
        return None, at
    return None, None


def _exit_on_problems(
    file: Path | None, published: int, tally: _Tally, bad: _BadLines, *, strict: bool
) -> None:
    """Show bad lines and failed deliveries on stderr and exit 1 if there were any."""
    for line in bad.shown:
        err_console.print(f"[red]bad line:[/red] {line}", highlight=False, soft_wrap=True)
    if bad.count > len(bad.shown):
        err_console.print(f"... and {bad.count - len(bad.shown)} more bad lines", highlight=False)
    for message in tally.errors:
        err_console.print(f"[red]delivery failed:[/red] {message}", highlight=False, soft_wrap=True)
    if bad.count:
        fail(f"{bad.count} bad line(s) in {file}{'; nothing sent (--strict)' if strict else ''}", code=1)
    if tally.failed or tally.sent < published:
        unacknowledged = published - tally.sent - tally.failed
        fail(f"{tally.failed} event(s) failed, {unacknowledged} unacknowledged", code=1)
