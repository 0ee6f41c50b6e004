"""``kep schemas``: list a service's Avro schemas, check their compatibility and models, export a model's schema.

The schemas are the ``--dir`` paths when given, else the topology's ``schemas:`` (``--topology`` or
``KEP_TOPOLOGY``) and ``KEP_SCHEMAS``. ``--import MODULE`` imports the modules that define hand-written models
(from the current directory), so ``check`` compares them with their schemas and ``export`` finds them.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from kep.cli._common import (
    ImportOption,
    JsonOption,
    TopologyOption,
    console,
    err_console,
    fail,
    import_modules,
    print_json,
)
from kep.schemas.compat import VersionCheck, check_registry
from kep.schemas.errors import KepError, SchemaError
from kep.schemas.events import event_type_for, event_types
from kep.schemas.generated import model_from_schema
from kep.schemas.model_schema import avro_schema, schema_drift
from kep.schemas.registry import KEP_SCHEMA_DIR, LocalSchemaRegistry
from kep.topology.loader import default_topology_path, load_topology, schema_registry
from kep.topology.model import Topology

app = typer.Typer(
    help="Avro schemas: list them, check compatibility between versions and models, export a model's schema.",
    no_args_is_help=True,
)


class Mode(StrEnum):
    backward = "backward"
    forward = "forward"
    full = "full"


DirOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--dir",
        "-d",
        help="Directory (or file) of NAME.vVERSION.avsc schemas; repeatable. Default: the topology's "
        "schemas: and KEP_SCHEMAS.",
        show_default=False,
    ),
]


def _registry(directories: list[Path] | None, topology: Path | None) -> LocalSchemaRegistry:
    """``--dir`` paths, else the topology's schemas (when there is a topology) and ``KEP_SCHEMAS``."""
    return _schemas(directories, topology)[0]


def _schemas(
    directories: list[Path] | None, topology: Path | None
) -> tuple[LocalSchemaRegistry, Topology | None]:
    """The registry (as ``_registry``) and the topology, when there is one."""
    spec = None
    try:
        source = topology or default_topology_path()
        if source is not None:
            spec = load_topology(source)
        if directories:
            registry = LocalSchemaRegistry(*directories)
        else:
            registry = schema_registry(spec, source=str(source) if source else None)
    except KepError as exc:
        fail(str(exc))
    if not set(registry.sources) - {KEP_SCHEMA_DIR}:  # kep's own events are always there
        fail(
            "no schemas: pass --dir DIR, set KEP_SCHEMAS, or give a topology (--topology or KEP_TOPOLOGY) "
            "whose 'schemas:' lists them"
        )
    return registry, spec


@app.command("ls")
def list_schemas(
    directory: DirOption = None,
    topology: TopologyOption = None,
    imports: ImportOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every schema: its versions, their CRC-64-AVRO fingerprints and the event model it maps to."""
    registry = _registry(directory, topology)
    import_modules(imports)
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
        shown = f"{model.__module__}.{model.__qualname__}" if model else "(built from the schema)"
        table.add_row(name, ", ".join(str(v) for v in versions), prints, shown)
    console.print(f"Avro schemas in {registry.where}", highlight=False, soft_wrap=True)
    console.print(table)


@app.command("check")
def check(
    mode: Annotated[
        Mode,
        typer.Option("--mode", "-m", case_sensitive=False, help="Compatibility between consecutive versions"),
    ] = Mode.backward,
    directory: DirOption = None,
    topology: TopologyOption = None,
    imports: ImportOption = None,
    models: Annotated[
        bool,
        typer.Option(
            "--models/--no-models",
            help="Also check each hand-written model against its newest schema, and that kep can build a model "
            "of every other event type the topology's topics carry.",
        ),
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Check consecutive versions of every schema; exit 1 naming the schema, versions and field that break."""
    registry, spec = _schemas(directory, topology)
    import_modules(imports)
    checks = check_registry(registry, mode.value.upper())
    events = {name for topic in spec.topics for name in topic.value_schema} if spec is not None else set()
    drift = _model_drift(registry, events) if models else []
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
            f"compatibility; {len(drift)} model problem(s)",
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
def export(
    name: Annotated[str, typer.Argument(help="Avro full name, e.g. acme.inventory.StockReserved.")],
    imports: ImportOption = None,
) -> None:
    """Print the schema a hand-written event model implies (save it as the next .avsc version when the model
    changes). Import the module defining the model with --import."""
    import_modules(imports)
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


def _model_drift(registry: LocalSchemaRegistry, events: set[str]) -> list[str]:
    """Hand-written models that differ from their newest schema; event types (``events``, the names the
    topology's topics carry) without a hand-written model that kep cannot build a model of."""
    lines = []
    written = event_types()
    for name in registry.names():
        newest = registry.latest(name)
        where = f"{name} v{newest.version} ({newest.path})"
        model = written.get(name)
        if model is not None:
            reason = schema_drift(model, newest.schema)
            if reason is not None:
                lines.append(f"{where}: {reason} ({model.__module__}.{model.__name__})")
        elif name in events:
            try:
                model_from_schema(newest.schema)
            except SchemaError as exc:
                lines.append(f"{where}: no event model can be built from it: {exc}")
    return lines


# `kep schemas list`, the name before `ls`, still works (hidden): `ls` is the listing verb of every command.
app.command("list", hidden=True)(list_schemas)
