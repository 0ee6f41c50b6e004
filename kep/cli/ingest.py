"""``kep ingest``: the HTTP intake, until SIGTERM or SIGINT (requests in flight get their answer first)."""

from __future__ import annotations

import gc
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
            "--host", envvar="KEP_INGEST_HOST", help="Address to listen on.", show_default="127.0.0.1"
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", envvar="KEP_INGEST_PORT", help="HTTP port.", show_default="8080"),
    ] = None,
    ack_timeout: Annotated[
        float | None,
        typer.Option(
            "--ack-timeout",
            envvar="KEP_INGEST_ACK_TIMEOUT_S",
            help="Seconds to wait for the broker before answering 503.",
            show_default="5",
        ),
    ] = None,
    status_store: Annotated[
        str | None,
        typer.Option(
            "--status-store",
            envvar="KEP_INGEST_STATUS_STORE",
            help="Where event and batch status is read (default: $KEP_IDEMPOTENCY_STORE); 'none': no status.",
            show_default=False,
        ),
    ] = None,
    registry_url: Annotated[
        str | None,
        typer.Option(
            "--registry-url",
            envvar="KEP_SCHEMA_REGISTRY_URL",
            help="Confluent schema registry (default: Avro single-object encoding, as the workers).",
            show_default=False,
        ),
    ] = None,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request.")] = False,
    log_format: LogFormatOption = "auto",
) -> None:
    """Serve POST /events/EVENT_TYPE and /batches/EVENT_TYPE: 202 once the broker stored the event, 503 if it cannot."""
    configure_logging(log_format, "INFO")
    try:
        import uvicorn

        from kep.ingest.app import create_app
        from kep.ingest.server import uvicorn_config
        from kep.ingest.settings import IngestSettings
        from kep.ingest.status import status_opener
    except ImportError as exc:
        fail(f"kep ingest needs the 'ingest' extra: pip install 'kep-kafka[ingest]' ({exc.name} is missing)")
    from kep.schemas.codec import codec_for
    from kep.topology.loader import load_topology, schema_registry

    overrides: dict[str, Any] = {
        "host": host,
        "port": port,
        "ack_timeout_s": ack_timeout,
        "status_store": status_store,
    }
    try:
        settings = IngestSettings(**{k: v for k, v in overrides.items() if v is not None})
        loaded = load_topology(topology)
        schemas = schema_registry(loaded)  # kep's, the topology's and KEP_SCHEMAS
        app = create_app(
            settings,
            loaded,
            kafka=kafka_settings(bootstrap_servers),
            open_status=status_opener(settings),
            codec=codec_for(registry_url, schemas),
            schemas=schemas,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_input=False)
        )
        fail(f"invalid intake settings: {problems}")
    except (KepError, ValueError) as exc:
        fail(str(exc))
    signed = "signed requests only" if settings.webhook_secret is not None else "no signature required"
    console.print(f"kep intake on http://{settings.host}:{settings.port} ({signed}); OpenAPI at /docs")
    # uvicorn stops gracefully on SIGTERM/SIGINT, then raises the signal again for the handler it replaced:
    # this no-op, so that a requested stop exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    # Requests allocate many short-lived objects: collect the youngest generation less often (fewer pauses).
    gc.set_threshold(20_000, 20, 20)
    uvicorn.Server(uvicorn_config(app, settings, access_log=access_log)).run()
    console.print("kep intake stopped")
