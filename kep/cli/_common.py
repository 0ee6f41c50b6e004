"""Options and helpers shared by the subcommand modules."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from kep.topology.settings import KafkaSettings


def _width() -> int | None:
    """Rich's own guess on a terminal; elsewhere (pipes, CI logs, tests) wide enough not to cut names."""
    return None if sys.stdout.isatty() else max(200, int(os.environ.get("COLUMNS", "0") or 0))


console = Console(width=_width(), soft_wrap=True)
err_console = Console(stderr=True, width=_width(), soft_wrap=True)

BootstrapOption = Annotated[
    str | None,
    typer.Option(
        "--bootstrap-servers",
        "-b",
        envvar="KEP_KAFKA_BOOTSTRAP_SERVERS",
        help="Kafka bootstrap servers, host:port[,host:port].",
        show_default=False,
    ),
]
TopologyOption = Annotated[
    Path | None,
    typer.Option("--topology", envvar="KEP_TOPOLOGY", help="Topology YAML file (default: the shipped one)."),
]


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables and text.")]


def print_json(data: Any) -> None:
    """``data`` as indented JSON on standard output (what ``--json`` prints)."""
    typer.echo(json.dumps(data, indent=2, default=str))


def kafka_settings(bootstrap_servers: str | None = None) -> KafkaSettings:
    """Connection settings: the explicit option wins, then ``KEP_KAFKA_*`` environment variables."""
    if bootstrap_servers:
        return KafkaSettings(bootstrap_servers=bootstrap_servers)
    return KafkaSettings()


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` in red on stderr and exit with ``code``."""
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)
