"""The intake's ASGI app: ``POST /events/{event_type}`` and ``POST /batches/{event_type}`` publish events and
answer once the broker stored them; ``GET /events/{id}`` and ``GET /batches/{id}`` read their status.

One route per accepted event type, so the OpenAPI document (``/openapi.json``, browsable at ``/docs``)
describes each type's body from its model. A request goes through, in order: the body (413 when too large, 408
when too slow), the webhook signature when a secret is set (401), the ``Idempotency-Key`` (400 when unusable),
the body's validation against the model (422 naming the field), then publishing (202 with where the record
is stored; 503 when the broker does not acknowledge it in time: nothing is answered 2xx unless it is stored).
"""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError, create_model
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException

from kep import __version__
from kep.ingest.answers import Answer, Answers, KeyReusedError, fingerprint
from kep.ingest.delay import DELAY_PARAMETERS, delay_of
from kep.ingest.publisher import AckTimeoutError, AsyncPublisher
from kep.ingest.settings import IngestSettings
from kep.ingest.signature import SignatureError, verify
from kep.producers.batches import MAX_BATCH_ID_LENGTH, batch_headers
from kep.producers.delivery import DeliveryReport
from kep.producers.errors import (
    BackpressureTimeoutError,
    DeliveryError,
    InvalidDelayError,
    InvalidTraceparentError,
    MissingKeyError,
    ProducerClosedError,
    ProducerError,
)
from kep.producers.headers import TRACEPARENT
from kep.producers.traceparent import validate_traceparent
from kep.schemas.codec import EventCodec, codec_for
from kep.schemas.errors import EncodeError
from kep.schemas.events import Event
from kep.schemas.registry import LocalSchemaRegistry
from kep.topology.loader import schema_registry
from kep.topology.model import Topology
from kep.topology.settings import KafkaSettings

log = structlog.get_logger(__name__)

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = MAX_BATCH_ID_LENGTH
#: kep's own event types, published by kep itself and not taken from clients.
INTERNAL_PREFIXES = ("kep.batches.",)
_JSON = "application/json"
_MSG_SIZE_TOO_LARGE = 10  # Kafka's MESSAGE_TOO_LARGE; librdkafka's local check is -186
_LOCAL_MSG_SIZE_TOO_LARGE = -186


class StatusReader(Protocol):
    """Where ``GET /events/{id}`` and ``GET /batches/{id}`` read (``kep.consumers.status``); sync calls."""

    def event_status(self, event_id: str) -> dict[str, Any] | None: ...

    def batch_status(self, batch_id: str) -> dict[str, Any] | None: ...

    def close(self) -> None: ...


# -- documented bodies ------------------------------------------------------------------------------------
class Accepted(BaseModel):
    """The event is stored: where, and where to ask for its status."""

    event_id: str
    event_type: str
    topic: str
    partition: int
    offset: int
    status_url: str


class BatchMember(BaseModel):
    event_id: str
    stored: bool
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    error: str | None = None


class BatchAccepted(BaseModel):
    """Every event of the batch is stored (202), or which ones are not (503)."""

    batch_id: str
    event_type: str
    total: int
    stored: int
    events: list[BatchMember]
    status_url: str
    error: str | None = None


class Problem(BaseModel):
    """Why a request was refused. ``detail`` lists the fields that failed validation (422)."""

    error: str
    message: str
    detail: list[dict[str, Any]] | None = None


def _problem(status: int, error: str, message: str, detail: list[dict[str, Any]] | None = None) -> Answer:
    body: dict[str, Any] = {"error": error, "message": message}
    if detail is not None:
        body["detail"] = detail
    return Answer(status, orjson.dumps(body))


class Refusal(Exception):
    """A request refused before anything was published."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.status)
        self.answer = answer


def _refuse(status: int, error: str, message: str, detail: list[dict[str, Any]] | None = None) -> Refusal:
    return Refusal(_problem(status, error, message, detail))


_RETRY_AFTER = {"Retry-After": "1"}


def _response(answer: Answer, *, replayed: bool = False) -> Response:
    headers = dict(_RETRY_AFTER) if answer.status == 503 else {}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(answer.body, status_code=answer.status, media_type=_JSON, headers=headers)


# -- validation errors, without the input (it may hold personal data) -----------------------------------
def _errors(exc: ValidationError, prefix: tuple[str | int, ...] = ("body",)) -> list[dict[str, Any]]:
    return [
        {"loc": [*prefix, *err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def _summary(detail: list[dict[str, Any]]) -> str:
    shown = []
    for err in detail[:5]:
        where = ".".join(str(p) for p in err["loc"][1:]) or "body"
        shown.append(f"{where}: {err['msg']}")
    more = f" (and {len(detail) - 5} more)" if len(detail) > 5 else ""
    return "; ".join(shown) + more


def _invalid(detail: list[dict[str, Any]]) -> Refusal:
    return _refuse(422, "invalid_body", _summary(detail), detail)


@dataclass(frozen=True)
class EventRoute:
    """An accepted event type: its model, its batch body model, its topic."""

    name: str
    model: type[Event]
    batch_model: type[BaseModel]
    topic: str


def accepted_event_types(
    topology: Topology, only: Sequence[str] = (), schemas: LocalSchemaRegistry | None = None
) -> list[EventRoute]:
    """The event types the intake takes: ``only``, or every type of ``schemas`` (default: the topology's,
    ``kep.topology.schema_registry``) that the topology routes to one topic. A type's model is its hand-written
    one when imported, else the one built from its newest schema."""
    schemas = schemas if schemas is not None else schema_registry(topology)
    known = schemas.names()
    names = list(only) if only else known
    routes = []
    for name in names:
        if name not in known:
            raise ValueError(f"event type {name!r} is not known (known: {', '.join(known) or 'none'})")
        model = schemas.model(name)
        topics = topology.topics_for_event(name)
        if len(topics) != 1:
            if only:
                where = ", ".join(t.name for t in topics) or "no topic"
                raise ValueError(f"event type {name!r} must go to exactly one topic of the topology: {where}")
            continue
        if not only and name.startswith(INTERNAL_PREFIXES):
            continue
        batch_model = create_model(
            f"{model.__name__}Batch",
            __doc__=f"A batch of {name} events, published together under one batch id.",
            events=(list[model], Field(min_length=1, description="The events of the batch.")),  # type: ignore[valid-type]
        )
        routes.append(EventRoute(name, model, batch_model, topics[0].name))
    return routes


# -- the app --------------------------------------------------------------------------------------------
class Intake:
    """What the routes share: settings, the publisher, the answers, the status reader."""

    def __init__(
        self,
        settings: IngestSettings,
        publisher: AsyncPublisher | None,
        status: StatusReader | None,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.status = status
        self.answers = Answers(max_size=settings.answer_cache_size, ttl_s=settings.answer_ttl_s)
        secret = settings.webhook_secret
        self._secret = secret.get_secret_value().encode() if secret is not None else None
        self._header = settings.signature_header.lower()
        self.stopping = False

    # -- request parts ----------------------------------------------------------------------------------
    async def body(self, request: Request, limit: int) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise _refuse(413, "body_too_large", f"the body is larger than {limit} bytes")
        content_type = request.headers.get("content-type")
        if content_type is not None and not _json_type(content_type):
            raise _refuse(
                415, "unsupported_media_type", "the body must be JSON (Content-Type: application/json)"
            )
        chunks = []
        size = 0
        try:
            async with asyncio.timeout(self.settings.body_timeout_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise _refuse(413, "body_too_large", f"the body is larger than {limit} bytes")
                    chunks.append(chunk)
        except TimeoutError:
            raise _refuse(
                408, "body_timeout", f"the body did not arrive within {self.settings.body_timeout_s:g}s"
            ) from None
        return b"".join(chunks)

    def check_signature(self, request: Request, body: bytes) -> None:
        if self._secret is None:
            return
        try:
            verify(
                request.headers.get(self._header),
                body,
                self._secret,
                tolerance_s=self.settings.signature_tolerance_s,
            )
        except SignatureError as exc:
            raise _refuse(401, "bad_signature", f"{self.settings.signature_header}: {exc}") from None

    @staticmethod
    def idempotency_key(request: Request) -> str | None:
        key = request.headers.get("idempotency-key")
        if key is None:
            return None
        if not key or len(key) > MAX_KEY_LENGTH or not all(33 <= ord(c) <= 126 for c in key):
            raise _refuse(
                400,
                "bad_idempotency_key",
                f"{IDEMPOTENCY_KEY_HEADER} must be 1 to {MAX_KEY_LENGTH} visible ASCII characters",
            )
        return key

    @staticmethod
    def traceparent(request: Request) -> list[tuple[str, str | bytes | None]]:
        value = request.headers.get(TRACEPARENT)
        if value is None:
            return []
        try:
            return [(TRACEPARENT, validate_traceparent(value))]
        except InvalidTraceparentError:
            return []  # a malformed trace context is dropped, not an error: the event still matters

    # -- publishing -------------------------------------------------------------------------------------
    async def publish(
        self,
        event: Event,
        headers: list[tuple[str, str | bytes | None]],
        when: tuple[datetime | None, float | None] = (None, None),
    ) -> DeliveryReport:
        if self.publisher is None or self.stopping:
            raise ProducerClosedError("the intake is shutting down")
        return await self.publisher.publish(
            event, timeout=self.settings.ack_timeout_s, headers=headers, deliver_at=when[0], delay=when[1]
        )

    def failure(self, exc: BaseException, event_id: str) -> Answer:
        """The answer for an event that was not (or not provably) stored."""
        if isinstance(exc, (AckTimeoutError, BackpressureTimeoutError, ProducerClosedError)):
            return _problem(503, "broker_unavailable", _not_stored(event_id, str(exc)))
        if isinstance(exc, DeliveryError):
            if exc.code in (_MSG_SIZE_TOO_LARGE, _LOCAL_MSG_SIZE_TOO_LARGE):
                return _problem(413, "record_too_large", f"event {event_id!r} is larger than the topic takes")
            return _problem(503, "broker_unavailable", _not_stored(event_id, str(exc)))
        if isinstance(exc, MissingKeyError):
            return _problem(422, "invalid_body", str(exc))
        if isinstance(exc, InvalidDelayError):
            return _problem(422, "bad_delay", str(exc))
        if isinstance(exc, (EncodeError, ValueError, OverflowError, TypeError)):
            return _problem(422, "invalid_body", f"event {event_id!r} cannot be encoded: {exc}")
        if isinstance(exc, ProducerError):
            return _problem(503, "broker_unavailable", _not_stored(event_id, str(exc)))
        raise exc


def _not_stored(event_id: str, why: str) -> str:
    return (
        f"event {event_id!r} is not known to be stored ({why}); send the request again with the same "
        f"{IDEMPOTENCY_KEY_HEADER}: it is processed once"
    )


def _json_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == _JSON or media.endswith("+json")


def _parse(model: type[BaseModel], body: bytes) -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise _invalid(_errors(exc)) from None
    except (ValueError, OverflowError, TypeError) as exc:  # a validator that failed outside pydantic's types
        raise _refuse(422, "invalid_body", f"the body cannot be read as this event: {exc}") from None


def _with_id(event: Event, event_id: str | None, loc: tuple[str | int, ...]) -> Event:
    """``event`` with ``event_id`` as its id; a different id already in the body is refused."""
    if event_id is None or event.event_id == event_id:
        return event
    if "event_id" in event.model_fields_set:
        message = f"differs from the {IDEMPOTENCY_KEY_HEADER} header, which is the event id"
        raise _invalid([{"loc": ["body", *loc, "event_id"], "msg": message, "type": "value_error"}])
    return event.model_copy(update={"event_id": event_id})


def _accepted(route: EventRoute, event_id: str, report: DeliveryReport) -> Answer:
    body = {
        "event_id": event_id,
        "event_type": route.name,
        "topic": report.topic,
        "partition": report.partition,
        "offset": report.offset,
        "status_url": f"/events/{quote(event_id, safe='')}",
    }
    return Answer(202, orjson.dumps(body))


def _handler(intake: Intake, route: EventRoute) -> Callable[[Request], Awaitable[Response]]:
    limit = intake.settings.max_body_bytes
    path = f"/events/{route.name}".encode()

    async def publish_event(request: Request) -> Response:
        try:
            body = await intake.body(request, limit)
            intake.check_signature(request, body)
            key = intake.idempotency_key(request)
            event = _with_id(_parse(route.model, body), key, ())
            headers = intake.traceparent(request)
            when = _when(request)
        except Refusal as refusal:
            return _response(refusal.answer)

        async def work() -> Answer:
            try:
                report = await intake.publish(event, headers, when)
            except Exception as exc:  # noqa: BLE001 - every failure becomes an answer that says "not stored"
                return intake.failure(exc, event.event_id)
            return _accepted(route, event.event_id, report)

        query = request.url.query.encode()  # a delayed request differs from the same body sent at once
        return await _answered_once(intake, key, path + b"?" + query if query else path, body, work)

    return publish_event


def _when(request: Request) -> tuple[datetime | None, float | None]:
    try:
        return delay_of(request.query_params)
    except ValueError as exc:
        raise _refuse(400, "bad_delay", str(exc)) from None


async def _answered_once(
    intake: Intake, key: str | None, path: bytes, body: bytes, work: Callable[[], Awaitable[Answer]]
) -> Response:
    """``work``'s answer; with an ``Idempotency-Key``, the first answer for that key and request (a retry gets
    it again, marked replayed), and 409 for the key reused with another request."""
    if key is None:
        return _response(await work())
    try:
        answer, replayed = await intake.answers.once(key, fingerprint(path, body), work)
    except KeyReusedError:
        return _response(_key_reused())
    return _response(answer, replayed=replayed)


def _key_reused() -> Answer:
    return _problem(
        409, "idempotency_key_reused", f"this {IDEMPOTENCY_KEY_HEADER} was first used for a different request"
    )


def _batch_handler(intake: Intake, route: EventRoute) -> Callable[[Request], Awaitable[Response]]:
    limit = intake.settings.max_batch_bytes
    most = intake.settings.max_batch_events
    path = f"/batches/{route.name}".encode()

    async def publish_batch(request: Request) -> Response:
        try:
            body = await intake.body(request, limit)
            intake.check_signature(request, body)
            key = intake.idempotency_key(request)
            parsed = _parse(route.batch_model, body)
            events: list[Event] = list(parsed.events)
            if len(events) > most:
                raise _refuse(413, "batch_too_large", f"a batch has at most {most} events, not {len(events)}")
            batch_id = key or str(uuid.uuid4())
            events = _member_ids(events, batch_id, deterministic=key is not None)
            headers = [*batch_headers(batch_id, len(events)), *intake.traceparent(request)]
        except Refusal as refusal:
            return _response(refusal.answer)

        async def work() -> Answer:
            return await _publish_members(intake, route, batch_id, events, headers)

        return await _answered_once(intake, key, path, body, work)

    return publish_batch


def _member_ids(events: list[Event], batch_id: str, *, deterministic: bool) -> list[Event]:
    """Members without an id in the body get one; with a batch id from the client, the same one on every
    retry (derived from the batch id and the position), so a resent batch has the same members."""
    named: list[Event] = []
    seen: dict[str, int] = {}
    for index, event in enumerate(events):
        if "event_id" not in event.model_fields_set and deterministic:
            member_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"kep-batch:{batch_id}:{index}"))
            event = event.model_copy(update={"event_id": member_id})
        if event.event_id in seen:
            message = f"the same event id as events[{seen[event.event_id]}]; members are counted by id"
            raise _invalid(
                [{"loc": ["body", "events", index, "event_id"], "msg": message, "type": "value_error"}]
            )
        seen[event.event_id] = index
        named.append(event)
    return named


async def _publish_members(
    intake: Intake,
    route: EventRoute,
    batch_id: str,
    events: list[Event],
    headers: list[tuple[str, str | bytes | None]],
) -> Answer:
    results = await asyncio.gather(*(intake.publish(e, headers) for e in events), return_exceptions=True)
    members = []
    stored = 0
    first_error: Answer | None = None
    for event, result in zip(events, results, strict=True):
        if isinstance(result, BaseException):
            answer = intake.failure(result, event.event_id)
            first_error = first_error or answer
            reason = orjson.loads(answer.body)["message"]
            members.append({"event_id": event.event_id, "stored": False, "error": reason})
        else:
            stored += 1
            members.append(
                {
                    "event_id": event.event_id,
                    "stored": True,
                    "topic": result.topic,
                    "partition": result.partition,
                    "offset": result.offset,
                }
            )
    body: dict[str, Any] = {
        "batch_id": batch_id,
        "event_type": route.name,
        "total": len(events),
        "stored": stored,
        "events": members,
        "status_url": f"/batches/{quote(batch_id, safe='')}",
    }
    if first_error is None:
        return Answer(202, orjson.dumps(body))
    failures = [m for m in members if not m["stored"]]
    status = 503 if any("not known to be stored" in str(m["error"]) for m in failures) else first_error.status
    body["error"] = (
        f"{len(events) - stored} of {len(events)} events are not known to be stored; send the batch again "
        f"with the same {IDEMPOTENCY_KEY_HEADER}: stored members are processed once"
    )
    return Answer(status, orjson.dumps(body))


# -- status ---------------------------------------------------------------------------------------------
def _status_handler(intake: Intake, kind: str) -> Callable[[Request], Awaitable[Response]]:
    async def status(request: Request) -> Response:
        ident: str = request.path_params["ident"]
        if intake.status is None:
            return _response(
                _problem(404, "no_status", "this intake serves no status (status_store is 'none')")
            )
        reader = intake.status.event_status if kind == "event" else intake.status.batch_status
        try:
            found = await asyncio.to_thread(reader, ident)
        except Exception as exc:  # noqa: BLE001 - the store is down: say so, do not crash
            log.warning("ingest: status store unavailable", error=str(exc))
            return _response(_problem(503, "status_unavailable", "the status store cannot be read right now"))
        if found is None:
            return _response(
                _problem(404, f"unknown_{kind}", f"no status for {kind} {ident!r} (unknown or expired)")
            )
        return Response(orjson.dumps(found), status_code=200, media_type=_JSON)

    return status


# -- assembly -------------------------------------------------------------------------------------------
_SINGLE_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": Accepted, "description": "Stored: the broker acknowledged the record."},
    400: {"model": Problem, "description": "An unusable Idempotency-Key."},
    401: {"model": Problem, "description": "A missing, stale or wrong webhook signature."},
    408: {"model": Problem, "description": "The body did not arrive in time."},
    409: {"model": Problem, "description": "The Idempotency-Key was used for a different request."},
    413: {"model": Problem, "description": "The body (or the record) is too large."},
    415: {"model": Problem, "description": "The body is not JSON."},
    422: {"model": Problem, "description": "The body is not a valid event; `detail` names the fields."},
    503: {"model": Problem, "description": "Not known to be stored: the broker did not acknowledge in time."},
}
_BATCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_SINGLE_RESPONSES,
    202: {"model": BatchAccepted, "description": "Every event of the batch is stored."},
    503: {
        "model": BatchAccepted,
        "description": "Some events are not known to be stored; `events` says which.",
    },
}


def _request_doc(component: str, what: str, intake: Intake) -> dict[str, Any]:
    parameters = [
        {
            "name": IDEMPOTENCY_KEY_HEADER,
            "in": "header",
            "required": False,
            "description": f"Becomes the {what} id: a retried request gets the first answer, and consumers "
            "process the event once.",
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": "^[!-~]+$"},
        }
    ]
    if intake.settings.webhook_secret is not None:
        parameters.append(
            {
                "name": intake.settings.signature_header,
                "in": "header",
                "required": True,
                "description": "t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.' + body>",
                "schema": {"type": "string"},
            }
        )
    return {
        "parameters": parameters,
        "requestBody": {
            "required": True,
            "content": {_JSON: {"schema": {"$ref": f"#/components/schemas/{component}"}}},
        },
    }


def create_app(
    settings: IngestSettings,
    topology: Topology,
    *,
    kafka: KafkaSettings | None = None,
    publisher: AsyncPublisher | None = None,
    status: StatusReader | None = None,
    open_status: Callable[[], StatusReader | None] | None = None,
    codec: EventCodec | None = None,
    schemas: LocalSchemaRegistry | None = None,
) -> FastAPI:
    """The intake. Give ``kafka`` (the app builds and closes its publisher, encoding with ``codec``, default
    single-object Avro) or a started ``publisher``; ``status`` or ``open_status`` (called at start-up) for the
    status routes."""
    if kafka is None and publisher is None:
        raise ValueError("create_app needs kafka= or publisher=")
    schemas = schemas if schemas is not None else schema_registry(topology)
    routes = accepted_event_types(topology, settings.event_types, schemas)
    if codec is None:
        codec = codec_for(None, schemas)
    intake = Intake(settings, publisher, status)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = intake.publisher is None
        if owned and kafka is not None:
            intake.publisher = AsyncPublisher(
                kafka, topology, linger_ms=settings.linger_ms, codec=codec
            ).start()
        if intake.status is None and open_status is not None:
            intake.status = await _open_status(open_status)
        _settle_heap()
        try:
            yield
        finally:
            await _shut_down(intake, owned)

    app = FastAPI(
        title="kep intake",
        version=__version__,
        description="Publishes events to Kafka and answers once the broker stored them.",
        lifespan=lifespan,
    )
    app.state.intake = intake
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    _add_publish_routes(app, intake, routes)
    _add_status_routes(app, intake)
    _add_probes(app, intake)
    _document_event_bodies(app, routes)
    return app


class _StatusUnavailable:
    """The status store could not be opened at start-up: status routes answer 503, events are still taken."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def event_status(self, event_id: str) -> dict[str, Any] | None:
        raise RuntimeError(self.reason)

    def batch_status(self, batch_id: str) -> dict[str, Any] | None:
        raise RuntimeError(self.reason)

    def close(self) -> None:
        pass


async def _open_status(open_status: Callable[[], StatusReader | None]) -> StatusReader | None:
    try:
        return await asyncio.to_thread(open_status)
    except Exception as exc:  # noqa: BLE001 - taking events matters more than answering status
        log.warning("ingest: status store unavailable; GET /events and /batches answer 503", error=str(exc))
        return _StatusUnavailable(str(exc))


def _settle_heap() -> None:
    """Everything built at start-up (models, routes, schemas) is kept for good: move it out of the garbage
    collector's sight, so collections triggered by requests only walk what requests allocate."""
    gc.collect()
    gc.freeze()


async def _shut_down(intake: Intake, owned: bool) -> None:
    intake.stopping = True
    if owned and intake.publisher is not None:
        left = await asyncio.to_thread(intake.publisher.close, 10.0)
        if left:
            log.warning("ingest: records never acknowledged at shutdown", count=left)
    if intake.status is not None:
        intake.status.close()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = "no such route" if exc.status_code == 404 else str(exc.detail)
    return _response(_problem(exc.status_code, "http_error", message))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return _response(_problem(422, "invalid_request", _summary(detail), detail))


def _with_delay(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "parameters": [*doc["parameters"], *DELAY_PARAMETERS]}


def _add_publish_routes(app: FastAPI, intake: Intake, routes: list[EventRoute]) -> None:
    for route in routes:
        name = route.model.__name__
        app.add_api_route(
            f"/events/{route.name}",
            _handler(intake, route),
            methods=["POST"],
            status_code=202,
            summary=f"Publish one {route.name}",
            description=(route.model.__doc__ or "").strip() + f"\n\nPublished to topic `{route.topic}`.",
            responses=_SINGLE_RESPONSES,
            openapi_extra=_with_delay(_request_doc(name, "event", intake)),
            operation_id=f"publish_{name}",
            tags=["events"],
        )
        app.add_api_route(
            f"/batches/{route.name}",
            _batch_handler(intake, route),
            methods=["POST"],
            status_code=202,
            summary=f"Publish a batch of {route.name}",
            description=(
                f"Every event gets the batch id (the {IDEMPOTENCY_KEY_HEADER}, or a new one): once each is "
                "handled or dead-lettered, the consumer group publishes one BatchCompleted."
            ),
            responses=_BATCH_RESPONSES,
            openapi_extra=_request_doc(route.batch_model.__name__, "batch", intake),
            operation_id=f"publish_batch_{name}",
            tags=["batches"],
        )
    known = ", ".join(r.name for r in routes) or "none"

    async def unknown_type(request: Request) -> Response:
        event_type = request.path_params["event_type"]
        message = f"no event type {event_type!r} here (known: {known})"
        return _response(_problem(404, "unknown_event_type", message))

    app.add_api_route("/events/{event_type}", unknown_type, methods=["POST"], include_in_schema=False)
    app.add_api_route("/batches/{event_type}", unknown_type, methods=["POST"], include_in_schema=False)


def _add_status_routes(app: FastAPI, intake: Intake) -> None:
    status_doc = {
        "parameters": [{"name": "ident", "in": "path", "required": True, "schema": {"type": "string"}}]
    }
    responses: dict[int | str, dict[str, Any]] = {
        200: {"description": "The status."},
        404: {"model": Problem, "description": "Unknown, or expired (the store's TTL)."},
        503: {"model": Problem, "description": "The status store cannot be read."},
    }
    for kind, path, summary in (
        ("event", "/events/{ident:path}", "An event's status in each consumer group"),
        ("batch", "/batches/{ident:path}", "A batch's progress in each consumer group"),
    ):
        app.add_api_route(
            path,
            _status_handler(intake, kind),
            methods=["GET"],
            summary=summary,
            responses=responses,
            openapi_extra=status_doc,
            operation_id=f"{kind}_status",
            tags=["status"],
        )


def _add_probes(app: FastAPI, intake: Intake) -> None:
    async def healthz(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type=_JSON)

    async def readyz(request: Request) -> Response:
        publisher = intake.publisher
        if intake.stopping or publisher is None:
            return _response(_problem(503, "not_ready", "the intake is starting or stopping"))
        if not publisher.healthy:
            return _response(_problem(503, "not_ready", "the broker did not acknowledge the latest event"))
        return Response(b'{"status":"ready"}', media_type=_JSON)

    app.add_api_route("/healthz", healthz, methods=["GET"], include_in_schema=False)
    app.add_api_route("/readyz", readyz, methods=["GET"], include_in_schema=False)


def _document_event_bodies(app: FastAPI, routes: list[EventRoute]) -> None:
    """The OpenAPI document, with each event type's body schema (from its model) among the components."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            _, defs = models_json_schema(
                [(r.model, "validation") for r in routes] + [(r.batch_model, "validation") for r in routes],
                ref_template="#/components/schemas/{model}",
            )
            document.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
