"""Options and helpers shared by the subcommand modules."""

from __future__ import annotations

import fnmatch
import importlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console
from rich.text import Text

from kep.consumers.redact import scrub
from kep.schemas.errors import KepError
from kep.schemas.settings import settings_problems
from kep.topology.cluster import require_cluster
from kep.topology.errors import AdminError
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
IsolationOption = Annotated[
    str,
    typer.Option(
        "--isolation-level",
        envvar="KEP_LAG_ISOLATION_LEVEL",
        help="The groups' isolation level: read_committed (librdkafka's default) or read_uncommitted.",
    ),
]
TopologyOption = Annotated[
    Path | None,
    typer.Option("--topology", envvar="KEP_TOPOLOGY", help="Topology YAML file (required: kep ships none)."),
]


def caller_modules_importable() -> None:
    """Put the working directory on ``sys.path``, so ``kep run mymodule:app`` and
    ``KEP_KAFKA_OAUTH_CB=mymodule:token`` find the caller's modules."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


ImportOption = Annotated[
    list[str] | None,
    typer.Option(
        "--import",
        "-i",
        help="Module defining hand-written event models (e.g. inventory.models), imported from the current "
        "directory; repeatable. Without it, models are built from the .avsc schemas.",
        show_default=False,
    ),
]


def import_modules(modules: list[str] | None) -> None:
    """Import the service's modules that define hand-written event models (defining a model registers it),
    finding them from the current directory as ``kep run`` does; exit 2 naming a module that fails."""
    if not modules:
        return
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            fail(f"--import {name}: cannot import it: {exc}")
        except KepError as exc:
            fail(f"--import {name}: {exc}")


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables and text.")]


def print_json(data: Any) -> None:
    """``data`` as indented JSON on standard output (what ``--json`` prints)."""
    typer.echo(json.dumps(data, indent=2, default=str))


GROUP_FILTER_HELP = "Only groups whose id matches this glob in full: * any run, ? one character, [abc] a set."
MAX_GROUP_FILTER = 255


def group_pattern(glob: str | None, *, option: str = "--group") -> re.Pattern[str] | None:
    """A ``--group`` glob as a pattern that matches whole group ids.

    A glob, not a regular expression: a pattern given on a command line (or copied from one) must not be
    able to take seconds per group id. ``fnmatch`` translates runs of ``*`` so that matching never backtracks
    exponentially, and the glob's length is bounded.
    """
    if glob is None:
        return None
    if len(glob) > MAX_GROUP_FILTER:
        fail(f"{option}: a pattern of at most {MAX_GROUP_FILTER} characters, got {len(glob)}")
    return re.compile(fnmatch.translate(glob))


def kafka_settings(bootstrap_servers: str | None = None) -> KafkaSettings:
    """Connection settings: the explicit option wins, then ``KEP_KAFKA_*`` environment variables."""
    caller_modules_importable()
    explicit: dict[str, Any] = {"bootstrap_servers": bootstrap_servers} if bootstrap_servers else {}
    try:
        return KafkaSettings(**explicit)
    except (ValidationError, SettingsError) as exc:
        fail(f"invalid Kafka settings: {settings_problems(exc, 'kafka.')}")


def cluster_settings(bootstrap_servers: str | None = None) -> KafkaSettings:
    """``kafka_settings``, once the cluster answers; otherwise one line naming the address, exit 1, within
    ``KEP_KAFKA_CONNECT_TIMEOUT_S`` (10 s)."""
    settings = kafka_settings(bootstrap_servers)
    check_cluster(settings)
    return settings


def check_cluster(settings: KafkaSettings) -> None:
    """Exit 1 with one line naming the address when the cluster does not answer (see ``require_cluster``)."""
    try:
        require_cluster(settings)
    except AdminError as exc:
        fail(str(exc), 1)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` in red on stderr and exit with ``code``. The message is shown as it is (no
    markup), secrets masked and control characters escaped: it often quotes what came from outside."""
    err_console.print(
        Text.assemble(("error:", "red"), " ", clean(scrub(message), lines=True)), highlight=False
    )
    raise typer.Exit(code)


# Everything a terminal may act on: C0 and C1 controls (ESC starts colour, cursor and title sequences), DEL,
# and the invisible marks that reorder text (bidi overrides and isolates).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_OR_NEWLINE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(text: str, *, lines: bool = False) -> str:
    """``text`` safe for a terminal: control characters shown as ``\\xNN`` / ``\\uNNNN`` escapes. With ``lines``,
    newlines and tabs are kept (tracebacks); otherwise they are escaped too (one cell, one line)."""
    return (_CONTROL if lines else _CONTROL_OR_NEWLINE).sub(_escape, text)


def plain(text: object, style: str = "", *, lines: bool = False) -> Text:
    """Untrusted ``text`` as a Rich ``Text``: never read as markup (``k-[/]`` is shown, not parsed), control
    characters escaped (see ``clean``)."""
    return Text(clean("" if text is None else str(text), lines=lines), style=style)


def key_text(key: bytes | None) -> str | None:
    """A record key as text: UTF-8 when it is, else with backslash escapes."""
    return None if key is None else key.decode("utf-8", "backslashreplace")


def span(seconds: float) -> str:
    """A length of time for a table cell: ``42.0s``, ``12.5m``, ``3.1h``."""
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"
