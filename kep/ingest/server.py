"""Serving the intake with uvicorn: in the foreground (``kep ingest``) or on a background thread (tests,
benchmarks)."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn

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


class BackgroundServer:
    """uvicorn on a daemon thread. ``start()`` returns once it listens; ``url`` tells where."""

    def __init__(self, config: uvicorn.Config) -> None:
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="kep-ingest-server", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.server.run()
        except BaseException as exc:  # noqa: BLE001 - surfaced by start()
            self._error = exc

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"the intake did not start: {self._error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the intake did not start within {timeout:g}s")
            time.sleep(0.01)  # sleep-ok: polling interval of a bounded wait for the server to listen
        return self

    @property
    def port(self) -> int:
        for server in self.server.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        raise RuntimeError("the intake is not listening")

    @property
    def url(self) -> str:
        return f"http://{self.server.config.host}:{self.port}"

    def stop(self, timeout: float = 30.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)
