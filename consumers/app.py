"""Declare a consumer group app: which topics, and which handler takes which event.

>>> app = App("billing", topics=["orders"])
>>> @app.handler("orders")
... def bill(event: OrderPlaced, ctx: MessageContext) -> None: ...

Handlers may be plain functions or ``async def``. A handler for an event type wins over a handler for a topic.
The event type is a model class or its Avro full name (``event="acme.inventory.StockReserved"``), so a
handler can take the model kep builds from the schema without naming a class.

Resources a worker process needs (connection pools, clients, threads) belong in ``@app.on_startup`` and
``@app.on_shutdown`` hooks, not at import: ``kep run`` with several processes imports the app in its supervisor
too, and only the worker processes run the hooks.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import ValidationError

from kep.consumers.context import MessageContext
from kep.consumers.errors import AppError
from kep.schemas.events import Event
from kep.topology import LimitSpec

HandlerFn = Callable[[Any, MessageContext], None] | Callable[[Any, MessageContext], Awaitable[None]]
HookFn = Callable[[], None] | Callable[[], Awaitable[None]]
F = TypeVar("F", bound=Callable[..., Any])
KeyStrategy = Literal["header", "coordinates"] | str  # or "field:<name>"


@dataclass(frozen=True, slots=True)
class Hook:
    """A startup or shutdown hook: called with no argument."""

    fn: HookFn
    is_async: bool
    name: str


def _hook(fn: Callable[..., Any]) -> Hook:
    if not callable(fn):
        raise AppError(f"a hook must be callable, got {fn!r}")
    return Hook(fn, inspect.iscoroutinefunction(fn), _name(fn))


def _name(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", repr(fn))
    return f"{module}.{qualname}" if module else qualname


@dataclass(frozen=True, slots=True)
class Handler:
    fn: HandlerFn
    is_async: bool
    name: str
    limit: LimitSpec | None = None  # its own rate or concurrency limit (consumers/limits)


class App:
    """A consumer group: ``kep run module:app`` runs it.

    ``group`` must match a group in the topology to get retry topics and a dead-letter topic; ``topics`` default
    to the group's topics there. ``fatal`` exception types skip retries and go to the dead-letter topic;
    ``retryable_only``, when given, makes every other exception fatal. ``idempotency_key`` chooses where the key
    comes from: ``"header"`` (the producer's ``kep-idempotency-key``, falling back to the coordinates),
    ``"coordinates"`` (topic/partition/offset) or ``"field:<name>"`` (an event field).
    """

    def __init__(
        self,
        group: str,
        *,
        topics: Sequence[str] | None = None,
        fatal: Sequence[type[BaseException]] = (),
        retryable_only: Sequence[type[BaseException]] = (),
        idempotency_key: KeyStrategy = "header",
    ) -> None:
        if not (idempotency_key in ("header", "coordinates") or idempotency_key.startswith("field:")):
            raise AppError(
                f"idempotency_key {idempotency_key!r}: use 'header', 'coordinates' or 'field:<name>'"
            )
        self.group = group
        self.topics = tuple(topics or ())
        self.fatal = tuple(fatal)
        self.retryable_only = tuple(retryable_only)
        self.idempotency_key = idempotency_key
        self._by_topic: dict[str, Handler] = {}
        self._by_event: dict[str, Handler] = {}
        self.startup: list[Hook] = []  # in declaration order
        self.shutdown: list[Hook] = []

    def on_startup(self, fn: F) -> F:
        """Run ``fn()`` in each worker process before it joins the group, in declaration order (``async def``
        on the event loop of the async handlers). If one raises, the worker does not start: the error names it."""
        self.startup.append(_hook(fn))
        return fn

    def on_shutdown(self, fn: F) -> F:
        """Run ``fn()`` when the worker stops, after the last handler returned and the group was left, in reverse
        declaration order; only after every startup hook ran. An error is logged and the others still run."""
        self.shutdown.insert(0, _hook(fn))
        return fn

    def handler(
        self,
        topic: str | None = None,
        *,
        event: type[Event] | str | None = None,
        rate: str | None = None,
        burst: int | None = None,
        concurrency: int | None = None,
        per: str | None = None,
    ) -> Callable[[F], F]:
        """Register a handler for a topic, or for an event type (a model or its Avro full name) on any of the
        app's topics. ``rate`` (``"50/s"``, ``"100/1m"``), ``burst``, ``concurrency`` and ``per`` (an event
        field) limit it across every replica (docs/limits.md); the topology's ``limits`` override them."""
        if (topic is None) == (event is None):
            raise AppError("handler(): give exactly one of a topic or event=EventType")
        limit = _limit(topic, event, rate=rate, burst=burst, concurrency=concurrency, per=per)

        def register(fn: F) -> F:
            name = getattr(fn, "__qualname__", repr(fn))
            handler = Handler(fn, inspect.iscoroutinefunction(fn), name, limit)
            if topic is not None:
                if topic in self._by_topic:
                    raise AppError(f"topic {topic!r} already has a handler ({self._by_topic[topic].name})")
                self._by_topic[topic] = handler
            else:
                assert event is not None
                name = event if isinstance(event, str) else event.avro_name
                if name in self._by_event:
                    raise AppError(f"event {name} already has a handler")
                self._by_event[name] = handler
            return fn

        return register

    def resolve(self, topic: str, event_type: str | None) -> Handler | None:
        if event_type is not None:
            found = self._by_event.get(event_type)
            if found is not None:
                return found
        return self._by_topic.get(topic)

    def handlers(self) -> list[Handler]:
        """Every registered handler, topic handlers first."""
        return [*self._by_topic.values(), *self._by_event.values()]

    def topic_limit(self, topic: str) -> bool:
        """Whether the handler of ``topic`` declared its own limit."""
        handler = self._by_topic.get(topic)
        return handler is not None and handler.limit is not None

    def limited_event_types(self) -> set[str]:
        """Event types whose handler declared its own limit."""
        return {name for name, handler in self._by_event.items() if handler.limit is not None}

    @property
    def handled_topics(self) -> tuple[str, ...]:
        return tuple(self._by_topic)

    def check(self, topics: Sequence[str]) -> None:
        """Every subscribed topic needs a handler (for its topic, or event-type handlers)."""
        if not self._by_topic and not self._by_event:
            raise AppError(f"app for group {self.group!r} has no handlers")
        missing = [t for t in topics if t not in self._by_topic and not self._by_event]
        if missing:
            raise AppError(f"app for group {self.group!r}: no handler for topic(s) {', '.join(missing)}")


def _limit(topic: str | None, event: type[Event] | str | None, **declared: Any) -> LimitSpec | None:
    """The handler's own limit, validated; ``AppError`` names the handler and what is wrong."""
    given = {key: value for key, value in declared.items() if value is not None}
    if not given:
        return None
    try:
        return LimitSpec(**given)
    except ValidationError as exc:
        what = (
            f"topic {topic!r}"
            if topic is not None
            else f"event {event if isinstance(event, str) else getattr(event, 'avro_name', event)}"
        )
        reasons = "; ".join(
            "".join(f"{p}: " for p in error["loc"]) + error["msg"].removeprefix("Value error, ")
            for error in exc.errors()
        )
        raise AppError(f"handler for {what}: invalid limit: {reasons}") from None


def load_app(target: str) -> App:
    """Import ``module:attribute`` and return the ``App`` it names; errors say what was wrong."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise AppError(f"{target!r}: expected 'module:attribute', e.g. 'inventory.handlers:app'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AppError(f"{target!r}: cannot import module {module_name!r}: {exc}") from exc
    if not hasattr(module, attr):
        raise AppError(f"{target!r}: module {module_name!r} has no attribute {attr!r}")
    app = getattr(module, attr)
    if not isinstance(app, App):
        raise AppError(f"{target!r}: {attr!r} is a {type(app).__name__}, not a kep App (kep.consumers.App)")
    return app
