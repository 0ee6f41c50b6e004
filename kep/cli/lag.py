"""``kep lag``: consumer-group lag like ``kafka-consumer-groups --describe``, plus lag in seconds and status.

One poll by default. ``--watch`` polls every ``--interval`` seconds until Ctrl-C and keeps a status window,
so WARN, STALL and STOP can show (a single poll only knows OK and ERR). ``--json`` prints the snapshot as
JSON (one document per poll with ``--watch``).
"""

from __future__ import annotations

import threading
from typing import Annotated

import orjson
import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from kep.cli._common import (
    GROUP_FILTER_HELP,
    BootstrapOption,
    clean,
    console,
    fail,
    group_pattern,
    kafka_settings,
    plain,
)
from kep.consumers.lag import GroupLag, LagError, LagMonitor, LagSnapshot, Status
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
                _cell(p.committed),
                _cell(p.log_end),
                _cell(p.lag_messages),
                _cell(p.lag_seconds, digits=1),
                _status(p.status),
            )
    return table


def render(snapshot: LagSnapshot) -> RenderableType:
    """The table of every partition, then one status line per group."""
    lines: list[RenderableType] = [_table(snapshot), Text()]
    lines += [_group_line(g) for g in snapshot.groups] or [Text("no consumer groups found", style="dim")]
    if snapshot.error:
        lines.append(plain(f"poll failed: {snapshot.error}", style="magenta"))
    return Group(*lines)


def _print_json(snapshot: LagSnapshot, *, compact: bool) -> None:
    option = 0 if compact else orjson.OPT_INDENT_2
    typer.echo(orjson.dumps(snapshot.as_dict(), option=option).decode())


def _watch(monitor: LagMonitor, interval: float, as_json: bool) -> None:
    pause = threading.Event()  # never set: waits are interrupted by Ctrl-C only
    snapshot: LagSnapshot | None = None
    try:
        if as_json:
            while True:
                snapshot = monitor.poll_or_failed(snapshot)
                _print_json(snapshot, compact=True)
                pause.wait(interval)
        else:
            snapshot = monitor.poll_or_failed()
            with Live(render(snapshot), console=console, auto_refresh=False) as live:
                while not pause.wait(interval):
                    snapshot = monitor.poll_or_failed(snapshot)
                    live.update(render(snapshot), refresh=True)
    except KeyboardInterrupt:
        return


def command(
    bootstrap_servers: BootstrapOption = None,
    group: Annotated[str | None, typer.Option("--group", "-g", help=GROUP_FILTER_HELP)] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.1, help="Seconds between refreshes.")] = 2.0,
    window: Annotated[
        float, typer.Option("--window", min=0.1, help="Status window in seconds (with --watch).")
    ] = 120.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show consumer-group lag: offsets, lag in messages and seconds, Burrow-style status."""
    configure_logging("console", "WARNING")  # warnings go to stderr; stdout stays the table or the JSON
    try:
        pattern = group_pattern(group)
        with LagMonitor(kafka_settings(bootstrap_servers), group_filter=pattern, window_s=window) as monitor:
            if watch:
                _watch(monitor, interval, as_json)
                return
            snapshot = monitor.poll()
    except LagError as exc:
        fail(str(exc))
    if as_json:
        _print_json(snapshot, compact=False)
    else:
        # Like kafka-consumer-groups: never squeeze the table into a narrow terminal or a pipe's 80 columns.
        wide = console.options.update(width=10_000)
        needed = Measurement.get(console, wide, _table(snapshot)).maximum
        out = console if needed <= console.width else Console(width=needed, highlight=False)
        out.print(render(snapshot))
