"""``kep``: the entry point. Each subcommand group lives in its own module and is registered here."""

from __future__ import annotations

import importlib
import os

import typer

from kep import __version__
from kep.cli import _help
from kep.logs import configure_logging

_help.install()

app = typer.Typer(
    name="kep",
    help="Kafka event processing: Avro events, consumer groups, retries, dead letters and lag.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=True,
)

# Each module exposes either `app` (a typer.Typer, mounted as a group) or `command` (a function, mounted as
# a single command). The name is the module's last part, with "_" as "-".
_SUBCOMMANDS = [
    "broker", "schemas", "topology", "produce", "demo", "run", "dlq", "lag", "lag_exporter", "console", "ingest",
    "status", "delays", "outbox", "schedules",
]  # fmt: skip


def _register() -> None:
    for short in _SUBCOMMANDS:
        try:
            module = importlib.import_module(f"kep.cli.{short}")
        except ModuleNotFoundError as exc:
            if exc.name == f"kep.cli.{short}":
                continue  # not built yet
            raise
        name = short.replace("_", "-")
        if hasattr(module, "app"):
            app.add_typer(module.app, name=name)
        else:
            app.command(name=name)(module.command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kep {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """kep command line."""
    # Library logs go to standard error, warnings and above, unless a command (``kep run``) says otherwise.
    configure_logging(os.environ.get("KEP_LOG_FORMAT", "auto"), os.environ.get("KEP_LOG_LEVEL", "WARNING"))


_register()


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
