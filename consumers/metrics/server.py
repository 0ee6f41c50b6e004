"""``MetricsServer``: ``/metrics``, ``/healthz`` and ``/readyz`` (plus any extra routes) over stdlib HTTP.

A threading HTTP server in a daemon thread, so a slow scrape never blocks a health check. It defends itself: a
connection that sends nothing (or too slowly) is closed after ``timeout_s``, and at most ``max_threads``
requests are served at once (the next get ``503`` at once instead of a thread each). Extra routes map a
path prefix to ``handler(path) -> (status, body, content_type)``; ``path`` is the request path as sent,
query string included. A prefix matches itself and anything below it (``/groups`` matches ``/groups`` and
``/groups/billing``, not ``/groupsx``); the longest matching prefix wins and extra routes override built-ins.
"""

from __future__ import annotations

import contextlib
import gzip
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from kep.consumers.metrics.errors import MetricsServerError

log = structlog.get_logger(__name__)

Response = tuple[int, bytes, str]
RouteHandler = Callable[[str], Response]
TEXT = "text/plain; charset=utf-8"
#: Seconds a connection may take to send its request (and to take the response) before it is closed.
CONNECTION_TIMEOUT_S = 10.0
#: Requests served at once; scrapes and probes need few.
MAX_THREADS = 16
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\nConnection: close\r\n\r\nbusy\n"


class Probes(Protocol):
    """What ``/healthz`` and ``/readyz`` ask: ``(ok, reason)`` each (a ``Health``, or a supervisor's view of
    its worker processes)."""

    def live(self) -> tuple[bool, str]: ...

    def ready(self) -> tuple[bool, str]: ...


def _probe_response(check: Callable[[], tuple[bool, str]]) -> Response:
    ok, reason = check()
    return (200 if ok else 503), f"{'ok' if ok else 'unavailable'}: {reason}\n".encode(), TEXT


def _matches(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix if prefix.endswith("/") else prefix + "/")


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.timeout_s)  # reads and writes; a silent client is dropped

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's naming
        self._respond(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._respond(send_body=False)

    def _respond(self, *, send_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        try:
            status, body, content_type, encoding = self.server.owner.dispatch(
                path,
                self.path,
                accept=self.headers.get("Accept", ""),
                encoding=self.headers.get("Accept-Encoding", ""),
            )
        except Exception as exc:  # a broken route answers 500 and the server keeps serving
            log.error("http handler failed", path=path, error=str(exc), error_type=type(exc).__name__)
            status, body, content_type, encoding = 500, b"internal error\n", TEXT, None
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http request", line=format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: MetricsServer
    timeout_s: float = CONNECTION_TIMEOUT_S
    slots: threading.BoundedSemaphore

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread per request, up to the cap; past it, ``503`` from the accepting thread and close."""
        if not self.slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.settimeout(1.0)
                request.sendall(_BUSY)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out or went away: not worth a traceback on stderr."""
        log.debug("http connection failed", client=str(client_address))


class MetricsServer:
    """Serves a registry and its probes (a ``Health``) on ``host:port``; ``port=0`` picks a free port (see ``port``)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        health: Probes,
        *,
        port: int,
        host: str = "0.0.0.0",
        routes: Mapping[str, RouteHandler] | None = None,
        timeout_s: float = CONNECTION_TIMEOUT_S,
        max_threads: int = MAX_THREADS,
    ) -> None:
        self.registry = registry
        self.health = health
        self.host = host
        self.timeout_s = timeout_s
        self.max_threads = max_threads
        self._requested_port = port
        self._routes: dict[str, RouteHandler] = {
            "/healthz": lambda _path: _probe_response(health.live),
            "/readyz": lambda _path: _probe_response(health.ready),
            **(routes or {}),
        }
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port once started (the requested one before)."""
        return self._server.server_address[1] if self._server is not None else self._requested_port

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> MetricsServer:
        if self._server is not None:
            return self
        try:
            server = _Server((self.host, self._requested_port), _Handler)
        except OSError as exc:
            raise MetricsServerError(
                f"cannot serve metrics on {self.host}:{self._requested_port}: {exc}"
            ) from exc
        server.owner = self
        server.timeout_s = self.timeout_s
        server.slots = threading.BoundedSemaphore(self.max_threads)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="kep-metrics-http", daemon=True
        )
        self._thread.start()
        log.info("metrics server started", host=self.host, port=self.port)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def dispatch(
        self, path: str, raw_path: str, *, accept: str = "", encoding: str = ""
    ) -> tuple[int, bytes, str, str | None]:
        """``(status, body, content_type, content_encoding)`` for a request (used by the handler thread)."""
        if path == "/metrics" and "/metrics" not in self._routes:
            return self._metrics(accept, encoding)
        best = max((p for p in self._routes if _matches(path, p)), key=len, default=None)
        if best is not None:
            status, body, content_type = self._routes[best](raw_path)
            return status, body, content_type, None
        if path == "/":
            listing = "\n".join(["/metrics", *sorted(self._routes)]) + "\n"
            return 200, listing.encode(), TEXT, None
        return 404, f"not found: {path}\n".encode(), TEXT, None

    def _metrics(self, accept: str, encoding: str) -> tuple[int, bytes, str, str | None]:
        encoder, content_type = choose_encoder(accept)
        body = encoder(self.registry)
        if "gzip" in encoding:
            return 200, gzip.compress(body, compresslevel=1), content_type, "gzip"
        return 200, body, content_type, None
