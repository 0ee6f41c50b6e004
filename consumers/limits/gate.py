"""Where a limited handler waits: before its run, in its own lane, as a ``Rerun`` the settler waits out.

``Limits.find(topic, event_type, handler)`` says which limit, if any, applies to a message (a dict look-up;
``None`` for an unlimited handler, which then never touches the store). ``LimitGate.run`` takes a concurrency
slot and a rate start, then runs the handler (``go``) and gives the slot back. When the limit says "not yet",
the outcome is ``Rerun(wait, "limit", ...)``: the settler waits on the partition's token and the message is
processed again in place. Only that lane waits: other partitions, other keys (key-ordered mode) and the poll
loop go on; the offset stays unfinished, so it is never committed before the handler ran; the attempt number
does not change, so a limit never uses up retries. A store that cannot answer is waited out the same way, with
a backoff, like the idempotency store.

Which limit applies, first match: the topology's entry for the event type, the topology's entry for the
topic, the handler's own declaration (``@app.handler(..., rate=..., concurrency=...)``).
"""

from __future__ import annotations

import hashlib
import itertools
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

import structlog

from kep.consumers.app import App, Handler
from kep.consumers.context import MessageContext
from kep.consumers.limits.errors import LimitStoreError
from kep.consumers.limits.gcra import tolerance
from kep.consumers.limits.metrics import LimitMetrics
from kep.consumers.limits.store import LimitStore
from kep.consumers.outcome import Outcome, Redo, Rerun
from kep.topology import LimitSpec, Rate

log = structlog.get_logger(__name__)

STORE_BACKOFF_S: Final = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
#: Longest single wait for a rate start before asking the store again.
MAX_RATE_WAIT_S: Final = 30.0
#: Polling a full concurrency limit: from the first to the last value as the message waits longer.
SLOT_POLL_S: Final = (0.01, 0.25)
#: Times a slot is given back before leaving it to its lease.
LEAVE_TRIES: Final = 3
_MISSING: Final = object()


@dataclass(frozen=True, slots=True)
class Limit:
    """A declared limit, parsed. ``name``: the topology's key or the handler's name (a metric label)."""

    name: str
    rate: Rate | None
    burst: int
    concurrency: int | None
    field: str | None

    @classmethod
    def from_spec(cls, name: str, spec: LimitSpec) -> Limit:
        return cls(name, spec.parsed_rate, spec.burst or 1, spec.concurrency, spec.per_field)


class LimitGate:
    """One limit bound to the store: what a lane calls around a limited handler's run."""

    def __init__(
        self, limit: Limit, *, group: str, store: LimitStore, metrics: LimitMetrics, lease_s: float
    ) -> None:
        self.limit = limit
        self._store = store
        self._metrics = metrics
        self._lease_s = lease_s
        self._prefix = f"{group}\0{limit.name}\0".encode()
        rate = limit.rate
        self._interval = rate.interval_s if rate is not None else 0.0
        self._tolerance = tolerance(self._interval, limit.burst) if rate is not None else 0.0
        self._owner = uuid.uuid4().hex
        self._holders = itertools.count()
        self._warned_missing = False
        metrics.declare(limit.name, rate.per_second if rate is not None else None, limit.concurrency)

    def key(self, event: Any) -> str:
        """The store key: a digest of the group, the limit and the ``per`` value (any bytes)."""
        data = self._prefix
        field = self.limit.field
        if field is not None:
            value = getattr(event, field, _MISSING)
            if value is _MISSING:
                if not self._warned_missing:
                    self._warned_missing = True
                    log.warning(
                        "limit's per field missing; such events share one limit",
                        limit=self.limit.name,
                        field=field,
                    )
                data += b"\1missing"
            elif isinstance(value, bytes):
                data += b"\2" + value
            else:
                data += b"\3" + str(value).encode("utf-8", "surrogatepass")
        return hashlib.blake2b(data, digest_size=20).hexdigest()

    def run(
        self,
        event: Any,
        ctx: MessageContext,
        redo: Redo | None,
        go: Callable[[], Outcome],
        give_up_claim: Callable[[], None],
    ) -> Outcome:
        """Run ``go`` (the handler) within the limit, or return the ``Rerun`` that holds the message back; then
        ``give_up_claim`` lets another replica take the message meanwhile (after a rebalance)."""
        limit, store, name = self.limit, self._store, self.limit.name
        key = self.key(event)
        holder: str | None = None
        try:
            if limit.concurrency is not None:
                candidate = f"{self._owner}:{next(self._holders)}"
                wait = store.enter(key, limit.concurrency, self._lease_s, candidate)
                if wait > 0:
                    give_up_claim()
                    return self._hold(ctx, redo, "concurrency", self._slot_poll(redo, wait))
                holder = candidate
            if limit.rate is not None:
                wait = store.take(key, self._interval, self._tolerance)
                if wait > 0:
                    if holder is not None:
                        self._leave(key, holder)
                    give_up_claim()
                    return self._hold(ctx, redo, "rate", min(wait, MAX_RATE_WAIT_S))
        except LimitStoreError as exc:
            if holder is not None:
                self._leave(key, holder)
            give_up_claim()
            return self._store_wait(ctx, redo, exc)
        since = redo.held_since if redo is not None else None
        self._metrics.waited(name, time.monotonic() - since if since is not None else 0.0)
        if holder is None:
            return go()
        self._metrics.in_use(name, 1)
        try:
            return go()
        finally:
            self._metrics.in_use(name, -1)
            self._leave(key, holder)

    def _slot_poll(self, redo: Redo | None, first_lease_end: float) -> float:
        """How long to wait before asking for a slot again: soon at first, then less often."""
        since = redo.held_since if redo is not None else None
        held = time.monotonic() - since if since is not None else 0.0
        low, high = SLOT_POLL_S
        return min(first_lease_end, max(low, min(high, held / 10)))

    def _hold(self, ctx: MessageContext, redo: Redo | None, kind: str, delay: float) -> Rerun:
        since = redo.held_since if redo is not None else None
        if since is None:
            self._metrics.held(self.limit.name, kind)
            since = time.monotonic()
        following = Redo(
            attempt=ctx.attempt,
            first_failure_ms=redo.first_failure_ms if redo is not None else None,
            held_since=since,
        )
        return Rerun(delay, "limit", following)

    def _store_wait(self, ctx: MessageContext, redo: Redo | None, error: LimitStoreError) -> Rerun:
        waits = redo.store_waits if redo is not None else 0
        self._metrics.store_error(self.limit.name)
        if waits == 0 or waits % 10 == 0:
            log.warning("limit store unavailable; waiting", limit=self.limit.name, error=str(error))
        following = Redo(
            attempt=ctx.attempt,
            first_failure_ms=redo.first_failure_ms if redo is not None else None,
            store_waits=waits + 1,
            held_since=redo.held_since if redo is not None else None,
        )
        return Rerun(STORE_BACKOFF_S[min(waits, len(STORE_BACKOFF_S) - 1)], "store-unavailable", following)

    def _leave(self, key: str, holder: str) -> None:
        """Give a slot back; a dropped connection is tried again at once (a new one), then the lease ends it."""
        for _ in range(LEAVE_TRIES - 1):
            try:
                self._store.leave(key, holder)
                return
            except LimitStoreError:
                continue
        try:
            self._store.leave(key, holder)
        except Exception as exc:  # noqa: BLE001 - the lease ends by itself
            log.warning(
                "cannot give a concurrency slot back; its lease will end",
                limit=self.limit.name,
                error=str(exc),
            )


class Limits:
    """The limits of one worker: which applies to which handler, and the store they share.

    ``declared``: the topology's ``limits`` of the group (by topic or event type). Handlers' own limits come
    from the app.
    """

    def __init__(
        self,
        *,
        group: str,
        app: App,
        declared: Mapping[str, LimitSpec],
        store: LimitStore,
        metrics: LimitMetrics,
        lease_s: float,
        carried: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        self._group, self._store, self._metrics, self._lease_s = group, store, metrics, lease_s
        self._declared = dict(declared)
        self._app = app
        self._carried = dict(carried or {})  # topic -> the event types on it (the topology's value_schema)
        self._gates: dict[str, LimitGate] = {}
        self._routes: dict[tuple[str, str], LimitGate | None] = {}  # the handler follows from the route
        for handler in app.handlers():
            if handler.limit is not None:
                self._gate(handler.name, handler.limit)
        for name, spec in self._declared.items():
            self._gate(name, spec)

    def _gate(self, name: str, spec: LimitSpec) -> LimitGate:
        gate = self._gates.get(name)
        if gate is None:
            gate = self._gates[name] = LimitGate(
                Limit.from_spec(name, spec),
                group=self._group,
                store=self._store,
                metrics=self._metrics,
                lease_s=self._lease_s,
            )
        return gate

    def find(self, topic: str, event_type: str, handler: Handler) -> LimitGate | None:
        """The limit of a message of ``event_type`` from ``topic`` run by ``handler``; None when unlimited."""
        route = (topic, event_type)
        try:
            return self._routes[route]
        except KeyError:
            pass
        found: LimitGate | None = None
        for name in (event_type, topic):
            if name in self._declared:
                found = self._gates[name]
                break
        else:
            if handler.limit is not None:
                found = self._gates[handler.name]
        self._routes[route] = found
        return found

    def may_limit(self, topic: str) -> bool:
        """Whether a limit may hold messages of ``topic`` (an unknown topic's event types: assume so)."""
        carried = self._carried.get(topic)
        if topic in self._declared or self._app.topic_limit(topic):
            return True
        limited_events = {name for name in self._declared if name not in self._carried}
        limited_events.update(self._app.limited_event_types())
        if not limited_events:
            return False
        return carried is None or bool(limited_events & set(carried))

    @property
    def names(self) -> list[str]:
        return sorted(self._gates)

    def close(self) -> None:
        self._store.close()
