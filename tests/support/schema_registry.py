"""A Confluent-compatible schema registry over real HTTP, for tests: the subjects, versions and ids endpoints the
confluent-kafka ``SchemaRegistryClient`` uses, with Confluent's error bodies and codes, basic and bearer auth, a
locked (read-only) mode, a refused-compatibility switch, an outage switch, and a log of every request.

Served by the standard library (``http.server``) on a loopback port from a daemon thread::

    with RegistryServer(users={"alice": "s3cret"}) as registry:
        codec = ConfluentCodec.from_settings(registry.url, SchemaRegistrySettings(username="alice", ...))

What it implements, as Confluent Schema Registry answers it:

- ``POST /subjects/{s}/versions``: register; the same schema again gets the same id (ids are global, as in
  Confluent's registry: the same schema under two subjects has one id). 422/42201 for a schema that is not
  JSON; 409/409 when ``incompatible`` holds the subject; 422/42205 when ``read_only``.
- ``POST /subjects/{s}``: look a schema up under a subject: 404/40401 subject not found, 404/40403 schema not
  found.
- ``GET /schemas/ids/{id}``: 404/40403 schema not found.
- ``GET /subjects``, ``GET /subjects/{s}/versions``, ``GET /subjects/{s}/versions/{v|latest}`` (40401, 40402).
- With ``users`` or ``tokens``: 401/401 without matching ``Authorization``.
- ``down``: every request answers 503/50003 (as a registry whose backend is unavailable).
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # decoded, without the query
    query: dict[str, list[str]]
    authorization: str | None
    headers: dict[str, str] = field(repr=False)


class _Failure(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class RegistryServer:
    """A registry on ``127.0.0.1:<free port>``; ``url`` is its address. Thread-safe; state is per instance."""

    def __init__(
        self,
        *,
        users: Mapping[str, str] | None = None,
        tokens: set[str] | None = None,
        read_only: bool = False,
    ) -> None:
        self.users = dict(users or {})
        self.tokens = set(tokens or ())
        self.read_only = read_only
        self.down = False
        self.incompatible: set[str] = set()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._schemas: dict[int, dict[str, Any]] = {}  # id -> {"schema": str, "schemaType": str}
        self._ids: dict[tuple[str, str], int] = {}  # (schema type, canonical schema) -> id
        self._subjects: dict[str, list[int]] = {}  # subject -> ids, version n at index n - 1
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> RegistryServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="registry-fixture", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket: from now on, connections are refused."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- direct access (what an operator's pipeline would have registered) -------------------------------------
    def register(self, subject: str, schema: str | Mapping[str, Any], schema_type: str = "AVRO") -> int:
        text = schema if isinstance(schema, str) else json.dumps(schema)
        with self._lock:
            return self._register(subject, text, schema_type)

    def subjects(self) -> list[str]:
        with self._lock:
            return sorted(self._subjects)

    def count(self, method: str, path: str) -> int:
        """How many requests ``method path`` (decoded path, no query) the server has received."""
        with self._lock:
            return sum(1 for r in self.requests if r.method == method and r.path == path)

    # -- the registry -------------------------------------------------------------------------------------------
    def _register(self, subject: str, text: str, schema_type: str) -> int:
        key = (schema_type, _canonical(text))
        schema_id = self._ids.get(key)
        if schema_id is None:
            schema_id = self._ids[key] = len(self._ids) + 1
            self._schemas[schema_id] = {"schema": text, "schemaType": schema_type}
        versions = self._subjects.setdefault(subject, [])
        if schema_id not in versions:
            versions.append(schema_id)
        return schema_id

    def _entry(self, subject: str, version: int) -> dict[str, Any]:
        schema_id = self._subjects[subject][version - 1]
        return {"subject": subject, "version": version, "id": schema_id, **self._body(schema_id)}

    def _body(self, schema_id: int) -> dict[str, Any]:
        stored = self._schemas[schema_id]
        body: dict[str, Any] = {"schema": stored["schema"]}
        if stored["schemaType"] != "AVRO":
            body["schemaType"] = stored["schemaType"]
        return body

    def _check_auth(self, request: Request) -> None:
        if not self.users and not self.tokens:
            return
        auth = request.authorization or ""
        if auth.startswith("Basic ") and self.users:
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                user, password = "", ""
            if self.users.get(user) == password and user:
                return
        if auth.startswith("Bearer ") and auth[7:] in self.tokens:
            return
        raise _Failure(401, 401, "Unauthorized")

    def _answer(self, request: Request, body: Any) -> Any:
        if self.down:
            raise _Failure(503, 50003, "Error while forwarding the request to the leader")
        self._check_auth(request)
        path = request.path
        if request.method == "GET" and path == "/subjects":
            return sorted(self._subjects)
        if match := re.fullmatch(r"/schemas/ids/(\d+)", path):
            schema_id = int(match[1])
            if request.method != "GET" or schema_id not in self._schemas:
                raise _Failure(404, 40403, f"Schema {schema_id} not found")
            return self._body(schema_id)
        if match := re.fullmatch(r"/subjects/([^/]+)/versions", path):
            subject = match[1]
            if request.method == "GET":
                if subject not in self._subjects:
                    raise _Failure(404, 40401, f"Subject '{subject}' not found.")
                return list(range(1, len(self._subjects[subject]) + 1))
            return {"id": self._register_request(subject, body)}
        if match := re.fullmatch(r"/subjects/([^/]+)/versions/([^/]+)", path):
            subject, version = match[1], match[2]
            if subject not in self._subjects:
                raise _Failure(404, 40401, f"Subject '{subject}' not found.")
            count = len(self._subjects[subject])
            number = count if version in ("latest", "-1") else int(version) if version.isdigit() else 0
            if not 1 <= number <= count:
                raise _Failure(404, 40402, f"Version {version} not found.")
            return self._entry(subject, number)
        if (match := re.fullmatch(r"/subjects/([^/]+)", path)) and request.method == "POST":
            subject = match[1]
            if subject not in self._subjects:
                raise _Failure(404, 40401, f"Subject '{subject}' not found.")
            key = (body.get("schemaType") or "AVRO", _canonical(str(body.get("schema", ""))))
            schema_id = self._ids.get(key)
            if schema_id is None or schema_id not in self._subjects[subject]:
                raise _Failure(404, 40403, "Schema not found")
            return self._entry(subject, self._subjects[subject].index(schema_id) + 1)
        raise _Failure(404, 404, "HTTP 404 Not Found")

    def _register_request(self, subject: str, body: Any) -> int:
        if self.read_only:
            raise _Failure(422, 42205, f"Subject {subject} is in read-only mode")
        text = str(body.get("schema", ""))
        try:
            json.loads(text)
        except ValueError:
            raise _Failure(422, 42201, "Either the input schema or one its references is invalid") from None
        if subject in self.incompatible:
            raise _Failure(
                409,
                409,
                f'Schema being registered is incompatible with an earlier schema for subject "{subject}"',
            )
        return self._register(subject, text, body.get("schemaType") or "AVRO")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                request = Request(
                    method,
                    unquote(parts.path.rstrip("/")) or "/",
                    parse_qs(parts.query),
                    self.headers.get("Authorization"),
                    dict(self.headers.items()),
                )
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                with server._lock:
                    server.requests.append(request)
                    try:
                        body = json.loads(raw) if raw else {}
                        status, answer = 200, server._answer(request, body)
                    except _Failure as failure:
                        status, answer = (
                            failure.status,
                            {"error_code": failure.code, "message": failure.message},
                        )
                    except ValueError:
                        status, answer = 400, {"error_code": 400, "message": "Unexpected character"}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def do_PUT(self) -> None:  # noqa: N802
                self._serve("PUT")

            def do_DELETE(self) -> None:  # noqa: N802
                self._serve("DELETE")

        return Handler


def _canonical(text: str) -> str:
    try:
        return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    except ValueError:
        return text
