"""Serving the console with uvicorn: in the foreground (``kep console``) or on a background thread (tests)."""

from __future__ import annotations

from typing import Any

import uvicorn

from kep._asgi import BackgroundServer as _BackgroundServer
from kep.console.settings import ConsoleSettings


def uvicorn_config(app: Any, settings: ConsoleSettings, *, access_log: bool = False) -> uvicorn.Config:
    """uvicorn with kep's logging (``log_config=None``), bounded keep-alive and graceful shutdown."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_config=None,
        access_log=access_log,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
        limit_concurrency=200,
        server_header=False,
        proxy_headers=False,
    )


class BackgroundServer(_BackgroundServer):
    """uvicorn serving the console on a daemon thread (see ``kep._asgi.BackgroundServer``)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config, "the console")
