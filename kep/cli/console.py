"""``kep console``: the operator console, until SIGTERM or SIGINT."""

from __future__ import annotations

import signal
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from kep.cli._common import BootstrapOption, TopologyOption, console, fail, kafka_settings
from kep.cli._service import LogFormatOption
from kep.logs import configure_logging
from kep.schemas.errors import KepError


def command(
    bootstrap_servers: BootstrapOption = None,
    topology: TopologyOption = None,
    host: Annotated[
        str | None,
        typer.Option(
            "--host", envvar="KEP_CONSOLE_HOST", help="Address to listen on.", show_default="127.0.0.1"
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", envvar="KEP_CONSOLE_PORT", help="HTTP port.", show_default="8090"),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            envvar="KEP_CONSOLE_DATABASE",
            help="SQLite file for the dead-letter index and the audit log.",
            show_default=".kep/console.db",
        ),
    ] = None,
    group: Annotated[
        str | None,
        typer.Option(
            "--group", "-g", envvar="KEP_CONSOLE_GROUP_FILTER", help="Only groups matching this regex."
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            envvar="KEP_CONSOLE_KAFKA_TIMEOUT_S",
            help="Seconds to wait on the broker.",
            show_default="10",
        ),
    ] = None,
    registry_url: Annotated[
        str | None,
        typer.Option(
            "--registry-url", envvar="KEP_SCHEMA_REGISTRY_URL", help="Confluent Schema Registry URL."
        ),
    ] = None,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request.")] = False,
    log_format: LogFormatOption = "auto",
) -> None:
    """Serve the operator console: groups, lag, retry backlog, dead letters; replay as an operator.

    Read-only unless KEP_CONSOLE_OPERATOR_TOKEN (login form, Bearer) or KEP_CONSOLE_OPERATOR_PASSWORD (basic
    auth) is set.
    """
    configure_logging(log_format, "INFO")
    try:
        import uvicorn

        from kep.console.app import create_app
        from kep.console.server import uvicorn_config
        from kep.console.settings import ConsoleSettings
    except ImportError as exc:
        fail(
            f"kep console needs the 'console' extra: pip install 'kep-kafka[console]' ({exc.name} is missing)"
        )
    from kep.topology.loader import load_topology

    overrides: dict[str, Any] = {
        "host": host,
        "port": port,
        "database": database,
        "group_filter": group,
        "kafka_timeout_s": timeout,
        "registry_url": registry_url,
    }
    try:
        settings = ConsoleSettings(**{k: v for k, v in overrides.items() if v is not None})
        app = create_app(settings, load_topology(topology), kafka=kafka_settings(bootstrap_servers))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        fail(f"invalid console settings: {problems}")
    except (KepError, ValueError, OSError) as exc:
        fail(str(exc))
    mode = "operators can act" if settings.operators_configured else "read-only: no operator token configured"
    console.print(f"kep console on http://{settings.host}:{settings.port} ({mode})")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    uvicorn.Server(uvicorn_config(app, settings, access_log=access_log)).run()
    console.print("kep console stopped")
