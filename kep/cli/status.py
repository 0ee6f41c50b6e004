"""``kep status EVENT_ID`` and ``kep status --batch BATCH_ID``: what became of an event or a batch, per group."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from kep.cli._common import console, fail
from kep.consumers.errors import ConfigError, IdempotencyStoreError

DEFAULT_STORE = "sqlite:///.kep/idempotency.db"


def _when(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def command(
    ident: Annotated[
        str, typer.Argument(help="The event id (or, with --batch, the batch id).", show_default=False)
    ],
    batch: Annotated[bool, typer.Option("--batch", help="IDENT is a batch id: show its progress.")] = False,
    store: Annotated[
        str,
        typer.Option("--store", envvar="KEP_IDEMPOTENCY_STORE", help="The workers' idempotency store URL."),
    ] = DEFAULT_STORE,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show an event's state in each consumer group, or a batch's progress. Exit 1 when unknown."""
    from kep.consumers.status import StatusView, open_status_store

    try:
        view = StatusView(open_status_store(store))
    except (ConfigError, IdempotencyStoreError) as exc:
        fail(str(exc))
    try:
        found = view.batch_status(ident) if batch else view.event_status(ident)
    except IdempotencyStoreError as exc:
        fail(str(exc))
    finally:
        view.close()
    kind = "batch" if batch else "event"
    if found is None:
        fail(f"no status for {kind} {ident!r} (unknown, or older than the store's TTL)", code=1)
    if as_json:
        console.print_json(json.dumps(found))
        return
    console.print(_batch_table(found) if batch else _event_table(found))


def _event_table(found: dict[str, Any]) -> Table:
    table = Table(title=f"event {escape(found['event_id'])}", title_justify="left")
    for column in ("group", "state", "attempt", "tier", "since", "exception", "batch"):
        table.add_column(column)
    for group, s in found["groups"].items():
        exception = s.get("exception_type", "")
        if s.get("reason"):
            exception = f"{exception} ({s['reason']})"
        table.add_row(
            escape(group), s["state"], str(s.get("attempt", "")), escape(s.get("tier") or ""), _when(s.get("at_ms")),
            escape(exception), escape(s.get("batch_id") or ""),
        )  # fmt: skip
    return table


def _batch_table(found: dict[str, Any]) -> Table:
    table = Table(title=f"batch {escape(found['batch_id'])}", title_justify="left")
    for column in (
        "group",
        "state",
        "total",
        "handled",
        "dead-lettered",
        "pending",
        "BatchCompleted",
        "updated",
    ):
        table.add_column(column)
    for group, p in found["groups"].items():
        table.add_row(
            escape(group), p["state"], str(p["total"]), str(p["handled"]), str(p["dead_lettered"]), str(p["pending"]),
            "published" if p["completed_event_published"] else "", _when(p.get("updated_ms")),
        )  # fmt: skip
    return table
