"""uvicorn on a background thread, for the console and the intake (tests and benchmarks start them this way)."""

from __future__ import annotations

import threading
import time

import uvicorn


class BackgroundServer:
    """uvicorn on a daemon thread. ``start()`` returns once it listens; ``url`` tells where. ``name`` says
    which server it is in errors (``the console``, ``the intake``)."""

    def __init__(self, config: uvicorn.Config, name: str = "the server") -> None:
        self.name = name
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"kep-{name.split()[-1]}-server", daemon=True)
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
                raise RuntimeError(f"{self.name} did not start: {self._error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start within {timeout:g}s")
            time.sleep(0.01)  # sleep-ok: polling interval of a bounded wait for the server to listen
        return self

    @property
    def port(self) -> int:
        for server in self.server.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        raise RuntimeError(f"{self.name} is not listening")

    @property
    def url(self) -> str:
        return f"http://{self.server.config.host}:{self.port}"

    def stop(self, timeout: float = 30.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)
