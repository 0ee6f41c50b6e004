"""``kep schemas``: list the Avro schemas, check their compatibility, export a model's schema."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from kep.cli._common import JsonOption, console, err_console, fail, print_json
from kep.schemas.compat import VersionCheck, check_registry
from kep.schemas.errors import SchemaError
from kep.schemas.events import event_type_for, event_types
from kep.schemas.model_schema import avro_schema, schema_drift
from kep.schemas.registry import LocalSchemaRegistry

app = typer.Typer(help="Avro schemas: list them, check compatibility between versions.", no_args_is_help=True)


class Mode(StrEnum):
    backward = "backward"
    forward = "forward"
    full = "full"


DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        "-d",
        help="Directory of NAME.vVERSION.avsc files (default: the packaged schemas).",
        show_default=False,
        file_okay=False,
    ),
]


def _registry(directory: Path | None) -> LocalSchemaRegistry:
    try:
        return LocalSchemaRegistry(directory) if directory else LocalSchemaRegistry.default()
    except SchemaError as exc:
        fail(str(exc))


@app.command("ls")
def list_schemas(directory: DirOption = None, as_json: JsonOption = False) -> None:
    """Every schema: its versions, their CRC-64-AVRO fingerprints and the event model it maps to."""
    registry = _registry(directory)
    models = event_types()
    if as_json:
        print_json(
            [
                {
                    "name": name,
                    "versions": [
                        {"version": v, "fingerprint": registry.get(name, v).fingerprint_hex}
                        for v in registry.versions(name)
                    ],
                    "model": f"{m.__module__}.{m.__name__}" if (m := models.get(name)) else None,
                }
                for name in registry.names()
            ]
        )
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    # A narrow terminal wraps names and fingerprints, never cuts them.
    table.add_column("name", style="bold", overflow="fold")
    table.add_column("versions", no_wrap=True)
    table.add_column("fingerprints", overflow="fold")
    table.add_column("model", overflow="fold")
    for name in registry.names():
        versions = registry.versions(name)
        prints = "\n".join(f"v{v} {registry.get(name, v).fingerprint_hex}" for v in versions)
        model = models.get(name)
        table.add_row(name, ", ".join(str(v) for v in versions), prints, model.__name__ if model else "-")
    console.print(f"Avro schemas in {registry.directory}", highlight=False, soft_wrap=True)
    console.print(table)


@app.command("check")
def check(
    mode: Annotated[
        Mode,
        typer.Option("--mode", "-m", case_sensitive=False, help="Compatibility between consecutive versions"),
    ] = Mode.backward,
    directory: DirOption = None,
    models: Annotated[
        bool,
        typer.Option("--models/--no-models", help="Also check each event model against its newest schema."),
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Check consecutive versions of every schema; exit 1 naming the schema, versions and field that break."""
    registry = _registry(directory)
    checks = check_registry(registry, mode.value.upper())
    drift = _model_drift(registry) if models else []
    if as_json:
        print_json(
            {
                "mode": mode.value.upper(),
                "ok": all(c.ok for c in checks) and not drift,
                "checks": [
                    {
                        "name": c.name,
                        "old_version": c.old_version,
                        "new_version": c.new_version,
                        "ok": c.ok,
                        "incompatibilities": [str(i) for i in c.incompatibilities],
                    }
                    for c in checks
                ],
                "drift": drift,
            }
        )
        if not all(c.ok for c in checks) or drift:
            raise typer.Exit(1)
        return
    for result in checks:
        _print_check(result)
    failed = [result for result in checks if not result.ok]
    for line in drift:
        err_console.print(f"[red]drift[/red] {line}", highlight=False, soft_wrap=True)
    if failed or drift:
        err_console.print(
            f"[red]error:[/red] {len(failed)} of {len(checks)} version pair(s) break {mode.value.upper()} "
            f"compatibility; {len(drift)} model(s) differ from their newest schema",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    console.print(
        f"{len(registry.names())} schema(s), {len(registry)} version(s), {len(checks)} version pair(s): "
        f"all {mode.value.upper()} compatible" + ("; models match their newest schemas" if models else ""),
        highlight=False,
        soft_wrap=True,
    )


@app.command("export")
def export(name: Annotated[str, typer.Argument(help="Avro full name, e.g. kep.orders.OrderPlaced.")]) -> None:
    """Print the schema an event model implies (save it as the next .avsc version when the model changes)."""
    try:
        model = event_type_for(name)
    except SchemaError as exc:
        fail(str(exc))
    typer.echo(json.dumps(avro_schema(model), indent=2))


def _print_check(result: VersionCheck) -> None:
    head = f"{result.name} v{result.old_version} -> v{result.new_version}"
    if result.ok:
        console.print(f"[green]ok[/green]   {head}", highlight=False)
        return
    err_console.print(f"[red]FAIL[/red] {head} is not {result.mode} compatible:", highlight=False)
    for item in result.incompatibilities:
        err_console.print(f"       {item}", highlight=False, soft_wrap=True)


def _model_drift(registry: LocalSchemaRegistry) -> list[str]:
    lines = []
    for name, model in sorted(event_types().items()):
        if name not in registry.names():
            continue
        newest = registry.latest(name)
        reason = schema_drift(model, newest.schema)
        if reason is not None:
            where = f"{name} v{newest.version} ({newest.path})"
            lines.append(f"{where}: {reason} ({model.__module__}.{model.__name__})")
    return lines


# `kep schemas list`, the name before `ls`, still works (hidden): `ls` is the listing verb of every command.
app.command("list", hidden=True)(list_schemas)
