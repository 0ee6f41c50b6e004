"""``kep dlq``: list, show and replay dead letters."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

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
from kep.consumers.dlq import (
    DeadLetterSummary,
    ReplayFilter,
    ReplayResult,
    dead_letter_topics,
    describe,
    fetch_records,
    refuse_other_topics,
    replay,
    summarize,
)
from kep.consumers.dlq.show import iso_ms
from kep.schemas.codec import codec_for
from kep.schemas.errors import KepError
from kep.topology.loader import default_topology_path, load_topology, schema_registry

app = typer.Typer(help="Dead letters: list, show and replay.", no_args_is_help=True)

_HEX_SHOWN = 512


@app.command("ls")
def list_dead_letters(
    bootstrap_servers: BootstrapOption = None,
    topology: TopologyOption = None,
    group: Annotated[str | None, typer.Option("--group", "-g", help="Only this consumer group.")] = None,
    topic: Annotated[
        str | None, typer.Option("--topic", "-t", help="Only this source topic (or dead-letter topic).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Per group and source topic: the dead-letter topic, how many records it holds, why, and their age."""
    try:
        refs = dead_letter_topics(load_topology(topology), group)
        if topic is not None:
            refs = [ref for ref in refs if topic in (ref.source, ref.topic)]
        summaries = summarize(cluster_settings(bootstrap_servers), [ref.topic for ref in refs])
    except KepError as exc:
        fail(str(exc))
    if as_json:
        rows = [
            {"group": r.group, "source": r.source, **_summary_dict(s)}
            for r, s in zip(refs, summaries, strict=True)
        ]
        print_json(rows)
        return
    table = Table(title="Dead letters")
    for column in (
        "group",
        "source",
        "dead-letter topic",
        "count",
        "pending",
        "by exception",
        "oldest",
        "newest",
    ):
        numbers = column in ("count", "pending")
        # A narrow terminal wraps names (and times), never cuts them.
        table.add_column(column, justify="right" if numbers else "left", no_wrap=numbers, overflow="fold")
    for ref, summary in zip(refs, summaries, strict=True):
        by_exception = Text("\n").join(
            plain(f"{_short(name)} x{n}") for name, n in summary.by_exception.most_common()
        )
        table.add_row(
            plain(ref.group),
            plain(ref.source),
            plain(ref.topic),
            Text(str(summary.count)) if summary.exists else Text("missing", style="yellow"),
            Text(str(summary.pending) if summary.exists else ""),
            by_exception,
            Text(iso_ms(summary.oldest_ms) or ""),
            Text(iso_ms(summary.newest_ms) or ""),
        )
    console.print(table if refs else "no dead-letter topics in the topology")


@app.command("show")
def show(
    topic: Annotated[str, typer.Argument(help="The dead-letter topic, e.g. orders.billing.dlq.")],
    partition: Annotated[int | None, typer.Option("--partition", "-p", help="Only this partition.")] = None,
    offset: Annotated[
        int | None, typer.Option("--offset", "-o", help="From this offset (needs --partition).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", help="Records to show (default 10; 1 with --offset).")
    ] = None,
    registry_url: Annotated[
        str | None, typer.Option("--registry-url", envvar="KEP_SCHEMA_REGISTRY_URL")
    ] = None,
    bootstrap_servers: BootstrapOption = None,
    topology: TopologyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Dead letters with their decoded event (hex when undecodable), error, traceback and provenance.

    Events are decoded with the topology's schemas (--topology or KEP_TOPOLOGY) and KEP_SCHEMAS.
    """
    count = limit if limit is not None else (1 if offset is not None else 10)
    try:
        source = topology or default_topology_path()
        spec = load_topology(source) if source is not None else None
        if spec is not None:
            refuse_other_topics(spec, topic)  # a main or retry topic holds no dead letters
        schemas = schema_registry(spec)
        records = fetch_records(
            cluster_settings(bootstrap_servers), topic, partition=partition, offset=offset, limit=count
        )
        codec = codec_for(registry_url, schemas)
        try:
            views = [describe(record, codec) for record in records]
        finally:
            if (close_codec := getattr(codec, "close", None)) is not None:
                close_codec()
    except KepError as exc:
        fail(str(exc))
    if as_json:
        print_json(views)
        return
    if not views:
        where = topic + (f"[{partition}]" if partition is not None else "")
        console.print(Text("no dead letters in ") + plain(where))
    for view in views:
        console.print(_panel(view))


@app.command("replay")
def replay_command(
    topic: Annotated[str, typer.Argument(help="The dead-letter topic, e.g. orders.billing.dlq.")],
    exception_type: Annotated[
        str | None, typer.Option("--exception-type", help="Qualified or short exception class name.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Dead-lettered at or after (ISO 8601, UTC).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Dead-lettered before (ISO 8601, UTC).")
    ] = None,
    key: Annotated[str | None, typer.Option("--key", "-k", help="Only records with this key.")] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", help="Replay at most this many (oldest first).")
    ] = None,
    rate: Annotated[
        float | None, typer.Option("--rate", help="At most this many records per second.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be replayed; send nothing.")
    ] = False,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Send to this topic instead of the group's first retry topic: every group reading it gets them.",
        ),
    ] = None,
    bootstrap_servers: BootstrapOption = None,
    topology: TopologyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Hand dead letters back to the group that dead-lettered them (its first retry topic, from the topology);
    other groups never see them again. A rerun never replays a record twice."""
    settings = cluster_settings(bootstrap_servers)
    try:
        filters = ReplayFilter.build(exception_type=exception_type, since=since, until=until, key=key)
        spec = load_topology(topology)
        with _ReplayProgress(enabled=not as_json) as progress:
            result = replay(
                settings,
                topic,
                topology=spec,
                to=to,
                filters=filters,
                limit=limit,
                rate=rate,
                dry_run=dry_run,
                on_progress=progress,
            )
    except KepError as exc:
        fail(str(exc))
    if as_json:
        print_json(_replay_dict(result))
        if result.failed:
            raise typer.Exit(1)
        return
    console.print(_replay_table(result))
    for reason in result.reasons:
        console.print(Text("failed: ", style="red") + plain(reason), highlight=False)
    if result.failed:
        raise typer.Exit(1)


class _ReplayProgress:
    """A progress bar that appears once there is something to send."""

    def __init__(self, *, enabled: bool = True) -> None:
        self._progress = Progress(
            TextColumn("replaying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not enabled,
        )
        self._task: Any = None

    def __call__(self, result: ReplayResult, total: int) -> None:
        if self._task is None:
            self._progress.start()
            self._task = self._progress.add_task("replay", total=total)
        self._progress.update(self._task, completed=result.replayed + result.failed)

    def __enter__(self) -> _ReplayProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()


def _replay_table(result: ReplayResult) -> Table:
    table = Table(title=Text("Replay of ") + plain(result.topic), show_header=False)
    table.add_column("what")
    table.add_column("records", justify="right")
    sent = ("would replay", result.selected) if result.dry_run else ("replayed", result.replayed)
    rows = [
        ("scanned", result.scanned),
        ("already replayed", result.already_replayed),
        ("matched", result.matched),
        sent,
        ("skipped (filters; kept for later)", result.skipped),
        ("deferred (over --limit)", result.deferred),
        ("failed", result.failed),
    ]
    for label, value in rows:
        table.add_row(label, str(value))
    for target, n in sorted(result.by_target.items()):
        table.add_row(Text("to ") + plain(target), str(n))
    dry = Text("dry run: nothing sent, nothing committed")
    table.caption = dry if result.dry_run else Text("progress kept in group ") + plain(result.group)
    return table


def _replay_dict(result: ReplayResult) -> dict[str, Any]:
    return {
        "topic": result.topic,
        "target": result.target,
        "dry_run": result.dry_run,
        "scanned": result.scanned,
        "already_replayed": result.already_replayed,
        "matched": result.matched,
        "selected": result.selected,
        "replayed": result.replayed,
        "skipped": result.skipped,
        "deferred": result.deferred,
        "failed": result.failed,
        "reasons": result.reasons,
        "committed": {str(p): o for p, o in sorted(result.committed.items())},
        "progress_group": result.group,
    }


def _summary_dict(summary: DeadLetterSummary) -> dict[str, Any]:
    return {
        "topic": summary.topic,
        "exists": summary.exists,
        "partitions": summary.partitions,
        "count": summary.count,
        "replayed": summary.replayed,
        "pending": summary.pending,
        "by_exception": dict(summary.by_exception.most_common()),
        "oldest": iso_ms(summary.oldest_ms),
        "newest": iso_ms(summary.newest_ms),
    }


def _panel(view: dict[str, Any]) -> Panel:
    """One dead letter. Everything in it came from the record (whoever produced it chose its key, headers and
    error text), so every value is shown as plain text: never markup, control characters escaped."""
    provenance = view["provenance"]
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("dead-lettered", plain(view["dead_lettered_at"]))
    key = view["key"] if view["key"] is not None else (view["key_hex"] and f"hex {view['key_hex']}")
    facts.add_row("key", plain(key))
    facts.add_row("event type", plain(view["event_type"]))
    parts: list[Any] = [facts]
    if provenance is not None:
        facts.add_row("error", plain(f"{provenance['exception_type']}: {provenance['exception_message']}"))
        facts.add_row(
            "original",
            plain(
                f"{provenance['original_topic']}[{provenance['original_partition']}]"
                f"@{provenance['original_offset']} at {provenance['original_timestamp_at']}"
            ),
        )
        facts.add_row("group", plain(provenance["consumer_group"]))
        facts.add_row("attempts", plain(provenance["attempt"]))
        facts.add_row(
            "failures", plain(f"first {provenance['first_failure_at']}, last {provenance['last_failure_at']}")
        )
        facts.add_row("idempotency key", plain(provenance["idempotency_key"]))
    else:
        facts.add_row("provenance", plain(view["provenance_error"] or "none", style="yellow"))
    if view["event"] is not None:
        parts.append(Text("event", style="bold"))
        parts.append(plain(json.dumps(view["event"], indent=2), lines=True))
    else:
        parts.append(plain(f"undecodable: {view['decode_error'] or 'no codec'}", style="red"))
        shown = (view["value_hex"] or "")[: _HEX_SHOWN * 2]
        more = f" ... ({view['value_size']} bytes)" if len(view["value_hex"] or "") > len(shown) else ""
        parts.append(Text(f"value (hex): {shown}{more}"))
    if provenance is not None and provenance["exception_traceback"]:
        parts.append(Text("traceback", style="bold"))
        parts.append(plain(provenance["exception_traceback"].rstrip(), lines=True))
    title = plain(f"{view['topic']}[{view['partition']}]@{view['offset']}")
    return Panel(Group(*parts), title=title, title_align="left")


def _short(exception_type: str) -> str:
    return exception_type.rsplit(".", 1)[-1] if not exception_type.startswith("(") else exception_type
