"""The console's ASGI app: server-rendered pages (Jinja2, autoescaped), htmx for live parts, no build step.

Pages: ``/groups`` (live), ``/dead-letters`` and ``/dead-letters/{topic}`` (search), one dead letter,
``/actions/{id}`` (a dry run and, once run, its outcome), ``/audit``. Actions are POSTs that need the operator
role and a CSRF token (see ``security.py``); a viewer never sees their controls, and a forged post gets 403.
"""

from __future__ import annotations

import contextlib
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import structlog
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from kep.console import actions as act
from kep.console.audit import Action, AuditLog
from kep.console.index import STATES, DeadLetterIndex, InvalidQueryError, Query, TopicState, iso
from kep.console.overview import STATUS_CLASS, Poller, build_overview
from kep.console.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    AuthError,
    Guard,
    Principal,
)
from kep.console.settings import ConsoleSettings
from kep.consumers.dlq import DeadLetterTopic, dead_letter_topics, describe, fetch_records
from kep.consumers.lag import LagMonitor
from kep.schemas.codec import EventCodec, codec_for
from kep.schemas.errors import KepError
from kep.topology.model import Topology
from kep.topology.settings import KafkaSettings

log = structlog.get_logger(__name__)

HERE = Path(__file__).resolve().parent
_PREVIEW_ROWS = 50


@dataclass
class Console:
    """Everything the routes share."""

    settings: ConsoleSettings
    kafka: KafkaSettings
    topology: Topology
    index: DeadLetterIndex
    audit: AuditLog
    guard: Guard
    codec: EventCodec | None
    poller: Poller
    dlqs: dict[str, DeadLetterTopic]

    def dlq(self, topic: str) -> DeadLetterTopic:
        found = self.dlqs.get(topic)
        if found is None:
            raise HTTPException(404, f"{topic!r} is not a dead-letter topic of the topology")
        return found


def create_app(
    settings: ConsoleSettings,
    topology: Topology,
    *,
    kafka: KafkaSettings,
    start_poller: bool = True,
) -> FastAPI:
    """The console app. The poller (lag and dead-letter index) starts with the app's lifespan."""
    codec: EventCodec | None
    try:
        codec = codec_for(settings.registry_url)
    except KepError as exc:
        log.warning("no codec: payloads are shown as hex", error=str(exc))
        codec = None
    index = DeadLetterIndex(settings.database, kafka, codec, timeout_s=settings.kafka_timeout_s)
    dlqs = {d.topic: d for d in dead_letter_topics(topology)}
    poller = Poller(
        make_monitor=lambda: LagMonitor(
            kafka,
            group_filter=settings.group_filter,
            window_s=settings.lag_window_s,
            timeout_s=settings.kafka_timeout_s,
        ),
        index=index,
        topics=list(dlqs),
        interval_s=settings.poll_interval_s,
    )
    console = Console(
        settings, kafka, topology, index, AuditLog(settings.database), Guard(settings), codec, poller, dlqs
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if start_poller:
            poller.start()
        try:
            yield
        finally:
            poller.stop()
            index.close()
            console.audit.close()

    app = FastAPI(title="kep console", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = console
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")  # autoescape on for .html
    templates.env.filters["iso"] = iso
    templates.env.filters["status_class"] = lambda s: STATUS_CLASS.get(str(s), "err")
    templates.env.filters["seconds"] = lambda v: "-" if v is None else f"{v:.1f}"
    templates.env.filters["json"] = lambda v: orjson.dumps(v, option=orjson.OPT_INDENT_2).decode()
    templates.env.globals["urlencode"] = urllib.parse.urlencode
    templates.env.globals["quote"] = lambda s: urllib.parse.quote(str(s), safe="")

    _install_middleware(app, console)
    render = _renderer(console, templates)
    _pages(app, console, render)
    _auth_routes(app, console, render)
    _action_routes(app, console, render)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", ""):
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        return render(request, "error.html", status=exc.status_code, message=exc.detail)

    return app


Render = Callable[..., HTMLResponse]


def _renderer(console: Console, templates: Jinja2Templates) -> Render:
    settings = console.settings

    def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        who: Principal = request.state.principal
        context.update(
            who=who,
            csrf_token=console.guard.csrf_token(request.state.csrf_cookie),
            operators_configured=settings.operators_configured,
            poll_interval_ms=int(settings.poll_interval_s * 1000),
        )
        return templates.TemplateResponse(request, name, context, status_code=status)

    return render


def _pages(app: FastAPI, console: Console, render: Render) -> None:
    settings, index, topology, poller, dlqs = (
        console.settings,
        console.index,
        console.topology,
        console.poller,
        console.dlqs,
    )

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/groups", status_code=303)

    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz() -> str:
        return "ok"

    @app.get("/groups", response_class=HTMLResponse)
    def groups(request: Request) -> HTMLResponse:
        overview = build_overview(topology, poller.snapshot, index)
        return render(request, "groups.html", overview=overview)

    @app.get("/groups/live", response_class=HTMLResponse)
    def groups_live(request: Request) -> HTMLResponse:
        overview = build_overview(topology, poller.snapshot, index)
        return render(request, "_groups.html", overview=overview)

    @app.get("/dead-letters", response_class=HTMLResponse)
    def dead_letter_topics_page(request: Request) -> HTMLResponse:
        counts = index.counts(list(dlqs))
        states = {t: index.states.get(t) for t in dlqs}
        return render(request, "dead_letters.html", dlqs=list(dlqs.values()), counts=counts, states=states)

    @app.get("/dead-letters/{topic}", response_class=HTMLResponse)
    def search(request: Request, topic: str) -> HTMLResponse:
        ref = console.dlq(topic)
        params = dict(request.query_params)
        error = None
        try:
            query = Query.parse(params)
        except InvalidQueryError as exc:
            query, error = Query(), str(exc)
        state = _fresh_state(console, topic)
        try:
            page = index.search(topic, query, page_size=settings.page_size, before=params.get("before"))
        except InvalidQueryError as exc:
            page, error = index.search(topic, query, page_size=settings.page_size), str(exc)
        return render(
            request,
            "search.html",
            status=400 if error else 200,
            dlq=ref,
            query=query,
            page=page,
            error=error,
            state=state,
            states=STATES,
            exceptions=index.exceptions(topic),
            query_string=urllib.parse.urlencode(query.params()),
        )

    @app.get("/dead-letters/{topic}/{partition}/{offset}", response_class=HTMLResponse)
    def dead_letter(request: Request, topic: str, partition: int, offset: int) -> HTMLResponse:
        ref = console.dlq(topic)
        view = _read_one(console, topic, partition, offset)
        history = console.audit.recent(topic=topic, ref=(partition, offset), limit=20)
        return render(
            request,
            "dead_letter.html",
            dlq=ref,
            view=view,
            row=index.row(topic, partition, offset),
            history=history,
            payload=orjson.dumps(view["event"], option=orjson.OPT_INDENT_2).decode() if view["event"] else "",
        )

    @app.get("/dead-letters/{topic}/{partition}/{offset}/edit", response_class=HTMLResponse)
    def edit_form(request: Request, topic: str, partition: int, offset: int) -> HTMLResponse:
        _require_operator(request)
        ref = console.dlq(topic)
        view = _read_one(console, topic, partition, offset)
        payload = orjson.dumps(view["event"], option=orjson.OPT_INDENT_2).decode() if view["event"] else ""
        return render(request, "edit.html", dlq=ref, view=view, payload=payload, error=None)

    @app.get("/actions/{action_id}", response_class=HTMLResponse)
    def action_page(request: Request, action_id: str) -> HTMLResponse:
        action = console.audit.get(action_id)
        if action is None:
            raise HTTPException(404, "no such action")
        rows = index.rows(action.topic, action.refs[:_PREVIEW_ROWS])
        return render(request, "action.html", action=action, rows=rows, dlq=console.dlqs.get(action.topic))

    @app.get("/audit", response_class=HTMLResponse)
    def audit_page(request: Request) -> HTMLResponse:
        return render(request, "audit.html", actions=console.audit.recent(limit=200))

    # -- posts --------------------------------------------------------------------------------------------


def _auth_routes(app: FastAPI, console: Console, render: Render) -> None:
    settings = console.settings

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> HTMLResponse:
        return render(request, "login.html", error=None)

    @app.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        form = await _checked_form(request, console, operator=False)
        token = str(form.get("token") or "")
        try:
            name = console.guard.clean_name(str(form.get("name") or ""))
        except AuthError as exc:
            return render(request, "login.html", status=400, error=str(exc))
        if not console.guard.token_ok(token):
            log.warning("console login refused", name=name)
            return render(request, "login.html", status=401, error="wrong name or token")
        log.info("console login", name=name)
        response = RedirectResponse("/groups", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            console.guard.session_for(name),
            max_age=int(settings.session_ttl_s),
            httponly=True,
            samesite="strict",
            secure=settings.secure_cookies,
        )
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        await _checked_form(request, console, operator=False)
        response = RedirectResponse("/groups", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response


def _action_routes(app: FastAPI, console: Console, render: Render) -> None:
    settings, index = console.settings, console.index

    @app.post("/dead-letters/{topic}/replay")
    async def plan_replay(request: Request, topic: str) -> Response:
        """Dry run of a replay: the selected dead letters (``ref``), or every pending one matching the
        query (``scope=filter``). Records the plan; the operator runs it from its page."""
        form = await _checked_form(request, console, operator=True)
        console.dlq(topic)
        who: Principal = request.state.principal
        try:
            if form.get("scope") == "filter":
                query = Query.parse({k: str(v) for k, v in form.items() if k not in ("ref", CSRF_FIELD)})
                refs = [(r.partition, r.offset) for r in index.select(topic, query)]
                what = f"every pending dead letter matching {query.params() or 'no filter'}"
            else:
                refs = act.parse_refs(str(v) for v in form.getlist("ref"))
                what = f"{len(refs)} selected dead letter(s)"
        except (InvalidQueryError, act.ActionError) as exc:
            raise HTTPException(400, str(exc)) from None
        if not refs:
            raise HTTPException(400, "nothing selected: tick dead letters, or replay by filter")
        result = await _in_thread(
            act.dry_run, console.kafka, console.topology, topic, refs, timeout_s=settings.kafka_timeout_s
        )
        action = console.audit.plan(
            who=who.label,
            kind="replay",
            topic=topic,
            refs=refs,
            description=f"replay {what}",
            preview=act.result_dict(result),
        )
        log.info("console dry run", action=action.id, who=who.label, topic=topic, selected=result.selected)
        return RedirectResponse(f"/actions/{action.id}", status_code=303)

    @app.post("/dead-letters/{topic}/{partition}/{offset}/edit", response_class=HTMLResponse)
    async def plan_edited(request: Request, topic: str, partition: int, offset: int) -> Response:
        form = await _checked_form(request, console, operator=True)
        ref = console.dlq(topic)
        who: Principal = request.state.principal
        view = await _in_thread(_read_one, console, topic, partition, offset)
        text = str(form.get("payload") or "")
        try:
            edited = act.validate_payload(text, view["event_type"], console.codec)
        except act.ActionError as exc:
            return render(request, "edit.html", status=422, dlq=ref, view=view, payload=text, error=str(exc))
        refs = [(partition, offset)]
        result = await _in_thread(
            act.dry_run, console.kafka, console.topology, topic, refs, timeout_s=settings.kafka_timeout_s
        )
        action = console.audit.plan(
            who=who.label,
            kind="replay-edited",
            topic=topic,
            refs=refs,
            description=f"replay {topic}[{partition}]@{offset} with an edited {edited.event_type} payload",
            preview={**act.result_dict(result), "schema": edited.schema_ref},
            new_value=edited.value,
            new_payload=edited.normalized,
        )
        return RedirectResponse(f"/actions/{action.id}", status_code=303)

    @app.post("/actions/{action_id}/run")
    async def run_action(request: Request, action_id: str) -> Response:
        await _checked_form(request, console, operator=True)
        who: Principal = request.state.principal
        action = console.audit.get(action_id)
        if action is None:
            raise HTTPException(404, "no such action")
        if not console.audit.start(action_id, who.label):
            raise HTTPException(409, f"action {action_id} was already run")
        log.info(
            "console replay", action=action_id, who=who.label, topic=action.topic, count=len(action.refs)
        )
        try:
            result = await _in_thread(_run, console, action)
        except (KepError, act.ActionError) as exc:
            console.audit.finish(action_id, ok=False, outcome={"error": f"{type(exc).__name__}: {exc}"})
        else:
            outcome = act.result_dict(result)
            console.audit.finish(action_id, ok=result.failed == 0, outcome=outcome)
        # the markers just written show as "replayed" at once
        await _in_thread(index.refresh, action.topic, budget_s=5.0, wait_s=5.0)
        return RedirectResponse(f"/actions/{action_id}", status_code=303)


def _fresh_state(console: Console, topic: str) -> TopicState:
    """The topic's index state; when the background refresher is behind (or not running), catch up first,
    within a bound, so a search never waits long."""
    state = console.index.states.get(topic)
    if (
        state is None
        or state.refreshed_at is None
        or time.time() - state.refreshed_at > console.settings.poll_interval_s
    ):
        state = console.index.refresh(topic, budget_s=1.0, wait_s=1.0)
    return state


def _run(console: Console, action: Action) -> Any:
    schema = action.preview.get("schema") if action.new_value is not None else None
    return act.run_replay(
        console.kafka,
        console.topology,
        action.topic,
        action.refs,
        timeout_s=console.settings.kafka_timeout_s,
        new_value=action.new_value,
        new_schema=schema,
    )


def _read_one(console: Console, topic: str, partition: int, offset: int) -> dict[str, Any]:
    """The dead letter itself, read from the topic (not the index): every header, the traceback."""
    try:
        records = fetch_records(
            console.kafka,
            topic,
            partition=partition,
            offset=offset,
            limit=1,
            idle_timeout=console.settings.kafka_timeout_s,
        )
    except KepError as exc:
        raise HTTPException(404, f"{topic}[{partition}]@{offset}: {exc}") from None
    if not records or records[0].offset != offset:
        raise HTTPException(404, f"{topic}[{partition}]@{offset}: no dead letter at this offset")
    record = records[0]
    view = describe(record, console.codec)
    view["all_headers"] = [
        {
            "name": name,
            "value": _text(value),
            "hex": None if _text(value) is not None else (value or b"").hex(),
        }
        for name, value in record.headers
    ]
    return view


def _text(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


async def _in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args, **kwargs)


def _require_operator(request: Request) -> None:
    who: Principal = request.state.principal
    if not who.operator:
        raise HTTPException(403, "this needs the operator role: log in with the operator token")


async def _checked_form(request: Request, console: Console, *, operator: bool) -> FormData:
    """The posted form, once the requester may act and the CSRF token matches; 403 otherwise."""
    if operator:
        _require_operator(request)
    origin = request.headers.get("origin")
    if origin is not None and urllib.parse.urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPException(403, "cross-site request refused")
    form = await request.form()
    token = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not console.guard.csrf_ok(request.cookies.get(CSRF_COOKIE), str(token) if token else None):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
    return form


def _install_middleware(app: FastAPI, console: Console) -> None:
    @app.middleware("http")
    async def identity(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        try:
            request.state.principal = console.guard.principal(
                request.headers.get("authorization"), request.cookies.get(SESSION_COOKIE)
            )
        except AuthError as exc:
            headers = {"WWW-Authenticate": 'Basic realm="kep console"'}
            return PlainTextResponse(f"401 unauthorized: {exc}", status_code=401, headers=headers)
        cookie = request.cookies.get(CSRF_COOKIE)
        fresh = cookie is None
        request.state.csrf_cookie = cookie or console.guard.new_csrf_cookie()
        response = await call_next(request)
        if fresh:
            response.set_cookie(
                CSRF_COOKIE,
                request.state.csrf_cookie,
                httponly=True,
                samesite="strict",
                secure=console.settings.secure_cookies,
            )
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"
        return response
