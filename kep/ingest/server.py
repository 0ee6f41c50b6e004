"""Serving the intake with uvicorn: in the foreground (``kep ingest``) or on a background thread (tests,
benchmarks)."""

from __future__ import annotations

from typing import Any

import uvicorn

from kep._asgi import BackgroundServer as _BackgroundServer
from kep.ingest.settings import IngestSettings


def uvicorn_config(app: Any, settings: IngestSettings, *, access_log: bool = False) -> uvicorn.Config:
    """uvicorn on httptools and uvloop (when installed), with the intake's connection bounds.

    Logging stays kep's (``log_config=None``); the access log is off unless asked for (it costs about as much
    as the request itself).
    """
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:  # pragma: no cover - uvloop is not built for every platform
        loop = "asyncio"
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop=loop,
        http="httptools",
        lifespan="on",
        log_config=None,
        access_log=access_log,
        timeout_keep_alive=max(1, round(settings.keep_alive_s)),
        limit_concurrency=settings.max_connections,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_timeout_s)),
        server_header=False,
        proxy_headers=False,
    )


class BackgroundServer(_BackgroundServer):
    """uvicorn serving the intake on a daemon thread (see ``kep._asgi.BackgroundServer``)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config, "the intake")
