"""``kep lag``: consumer-group lag like ``kafka-consumer-groups --describe``, plus lag in seconds and status.

One poll by default. ``--watch`` polls every ``--interval`` seconds until Ctrl-C and keeps a status window,
so WARN, STALL and STOP can show (a single poll only knows OK and ERR). ``--json`` prints the snapshot as
JSON (one document per poll with ``--watch``).
"""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from typing import Annotated

import orjson
import typer
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from kep.cli._common import (
    GROUP_FILTER_HELP,
    BootstrapOption,
    IsolationOption,
    JsonOption,
    clean,
    cluster_settings,
    console,
    fail,
    group_pattern,
    plain,
)
from kep.consumers.lag import GroupLag, LagError, LagMonitor, LagSnapshot, PartitionLag, Status
from kep.consumers.lag.probe import ISOLATION_LEVELS, IsolationLevel
from kep.logs import configure_logging

STYLES = {
    Status.OK: "green",
    Status.WARN: "yellow",
    Status.STALL: "red",
    Status.STOP: "bold red",
    Status.ERR: "magenta",
}
COLUMNS = ("GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "LAG-SECONDS", "STATUS")


def _cell(value: int | float | None, *, digits: int | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if digits is not None else str(value)


def _status(status: Status) -> Text:
    return Text(status.value, style=STYLES[status])


def _group_line(group: GroupLag) -> Text:
    members = "?" if group.members is None else str(group.members)
    line = Text.assemble(
        ("group ", "dim"),
        (clean(group.group), "bold"),
        ": ",
        _status(group.status),
        clean(f"  state {group.state}, {members} members, lag {group.lag_messages} messages, "),
        f"max {group.max_lag_seconds:.1f}s",
    )
    if group.error:
        line.append(clean(f"  ({group.error})"), style="magenta")
    return line


def _committed(p: PartitionLag) -> str:
    """The committed offset; below the log start also the start it is measured from."""
    if p.below_log_start and p.committed is not None:
        return f"{p.committed} (<{p.log_start})"
    return _cell(p.committed)


def isolation_level(value: str) -> IsolationLevel:
    """The ``--isolation-level`` value, or exit 2 naming the choices."""
    for level in ISOLATION_LEVELS:
        if value == level:
            return level
    fail(f"--isolation-level must be one of {', '.join(ISOLATION_LEVELS)}, got {value!r}")


def _table(snapshot: LagSnapshot) -> Table:
    table = Table(*COLUMNS, box=None, pad_edge=False, header_style="bold")
    for column in table.columns[2:7]:
        column.justify = "right"
    for group in snapshot.groups:
        for p in group.partitions:
            table.add_row(
                plain(group.group),  # group ids and topics are whatever their creators chose
                plain(p.topic),
                str(p.partition),
                _committed(p),
                _cell(p.log_end),
                _cell(p.lag_messages),
                _cell(p.lag_seconds, digits=1),
                _status(p.status),
            )
    return table


COMPACT_COLUMNS = ("PARTITION", "COMMITTED", "LOG-END", "LAG", "SECONDS", "STATUS", "TOPIC")


def _compact_table(group: GroupLag) -> Table:
    """One group's partitions for a narrow terminal: the topic last, wrapped (never cut) when it is long."""
    table = Table(*COMPACT_COLUMNS, box=None, pad_edge=False, header_style="bold")
    for column in table.columns[:-1]:
        column.no_wrap = True
    for column in table.columns[:5]:
        column.justify = "right"
    table.columns[-1].overflow = "fold"
    for p in group.partitions:
        table.add_row(
            str(p.partition),
            _committed(p),
            _cell(p.log_end),
            _cell(p.lag_messages),
            _cell(p.lag_seconds, digits=1),
            _status(p.status),
            p.topic,
        )
    return table


class _Partitions:
    """The partition table where it fits the terminal; else one narrower table per group, under its name."""

    def __init__(self, snapshot: LagSnapshot) -> None:
        self.snapshot = snapshot

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        table = _table(self.snapshot)
        unbounded = options.update(width=10_000)  # a measurement is clamped to the width it is given
        if Measurement.get(console, unbounded, table).maximum <= options.max_width:
            yield table
            return
        for index, group in enumerate(self.snapshot.groups):
            if index:
                yield Text()
            yield Text.assemble(("group ", "dim"), (group.group, "bold"))
            yield _compact_table(group)


def render(snapshot: LagSnapshot) -> RenderableType:
    """The table of every partition (adapted to the width: names are wrapped, never cut), then one status line
    per group."""
    lines: list[RenderableType] = [_Partitions(snapshot), Text()]
    lines += [_group_line(g) for g in snapshot.groups] or [Text("no consumer groups found", style="dim")]
    if snapshot.error:
        lines.append(plain(f"poll failed: {snapshot.error}", style="magenta"))
    return Group(*lines)


def only_topics(snapshot: LagSnapshot, pattern: re.Pattern[str] | None) -> LagSnapshot:
    """``snapshot`` with only the partitions of topics whose name matches ``pattern`` in full (and the groups
    that have some)."""
    if pattern is None:
        return snapshot
    groups = []
    for group in snapshot.groups:
        kept = tuple(p for p in group.partitions if pattern.fullmatch(p.topic))
        if kept:
            groups.append(replace(group, partitions=kept))
    return replace(snapshot, groups=tuple(groups))


def _print_json(snapshot: LagSnapshot, *, compact: bool) -> None:
    option = 0 if compact else orjson.OPT_INDENT_2
    typer.echo(orjson.dumps(snapshot.as_dict(), option=option).decode())


def _watch(monitor: LagMonitor, interval: float, as_json: bool, topics: re.Pattern[str] | None) -> None:
    pause = threading.Event()  # never set: waits are interrupted by Ctrl-C only
    snapshot: LagSnapshot | None = None
    try:
        if as_json:
            while True:
                snapshot = monitor.poll_or_failed(snapshot)
                _print_json(only_topics(snapshot, topics), compact=True)
                pause.wait(interval)
        else:
            snapshot = monitor.poll_or_failed()
            with Live(render(only_topics(snapshot, topics)), console=console, auto_refresh=False) as live:
                while not pause.wait(interval):
                    snapshot = monitor.poll_or_failed(snapshot)
                    live.update(render(only_topics(snapshot, topics)), refresh=True)
    except KeyboardInterrupt:
        return


def command(
    bootstrap_servers: BootstrapOption = None,
    group: Annotated[str | None, typer.Option("--group", "-g", help=GROUP_FILTER_HELP)] = None,
    topic: Annotated[
        str | None,
        typer.Option(
            "--topic",
            "-t",
            help="Only partitions of topics whose name matches this glob in full (* ? [abc]).",
        ),
    ] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.1, help="Seconds between refreshes.")] = 2.0,
    window: Annotated[
        float, typer.Option("--window", min=0.1, help="Status window in seconds (with --watch).")
    ] = 120.0,
    as_json: JsonOption = False,
    isolation: IsolationOption = "read_committed",
) -> None:
    """Show consumer-group lag: offsets, lag in messages and seconds, Burrow-style status."""
    configure_logging("console", "WARNING")  # warnings go to stderr; stdout stays the table or the JSON
    try:
        topics = group_pattern(topic, option="--topic")
        pattern = group_pattern(group)
        kafka = cluster_settings(bootstrap_servers)
        level = isolation_level(isolation)
        with LagMonitor(kafka, group_filter=pattern, window_s=window, isolation_level=level) as monitor:
            if watch:
                _watch(monitor, interval, as_json, topics)
                return
            snapshot = only_topics(monitor.poll(), topics)
    except LagError as exc:
        fail(str(exc))
    if as_json:
        _print_json(snapshot, compact=False)
    elif console.is_terminal:
        console.print(render(snapshot))  # fits the terminal: a narrower layout when the table does not
    else:
        # Like kafka-consumer-groups: a pipe gets the whole table, as wide as it needs.
        wide = console.options.update(width=10_000)
        needed = Measurement.get(console, wide, _table(snapshot)).maximum
        out = console if needed <= console.width else Console(width=needed, highlight=False)
        out.print(render(snapshot))
