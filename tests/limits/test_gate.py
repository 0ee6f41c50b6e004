"""The gate, on the memory store with a fake clock: a held message is a ``Rerun`` that keeps its attempt and
gives its claim up; a granted one runs and gives its slot back; a store that cannot answer is waited out."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from kep.consumers.context import MessageContext
from kep.consumers.limits import Limit, LimitGate, LimitMetrics, LimitStoreError
from kep.consumers.limits.memory import MemoryLimitStore
from kep.consumers.outcome import HANDLED, Outcome, Redo, Rerun
from kep.topology import LimitSpec
from shop.orders import OrderPlaced
from shop.samples import sample_events
from tests.limits.test_limit_stores import FakeClock

pytestmark = pytest.mark.unit


def context(attempt: int = 1) -> MessageContext:
    return MessageContext(
        None, group="g", topic="orders", attempt=attempt, idempotency_key="k", event_type=None
    )  # type: ignore[arg-type]


def order(customer: str) -> OrderPlaced:
    event = next(e for e in sample_events(1, kind="orders") if isinstance(e, OrderPlaced))
    return event.model_copy(update={"customer_id": customer})


class Runs:
    def __init__(self) -> None:
        self.handled = 0
        self.claims_given_up = 0

    def go(self) -> Outcome:
        self.handled += 1
        return HANDLED

    def give_up(self) -> None:
        self.claims_given_up += 1


def gate(spec: LimitSpec, store: Any, registry: CollectorRegistry | None = None) -> LimitGate:
    metrics = LimitMetrics("g", registry)
    return LimitGate(Limit.from_spec("orders", spec), group="g", store=store, metrics=metrics, lease_s=60)


def test_a_held_message_keeps_its_attempt_and_gives_its_claim_up() -> None:
    clock, registry, runs = FakeClock(), CollectorRegistry(), Runs()
    limited = gate(LimitSpec(rate="2/s"), MemoryLimitStore("g", clock=clock), registry)
    event = order("c-1")
    assert limited.run(event, context(), None, runs.go, runs.give_up) is HANDLED
    held = limited.run(event, context(attempt=3), Redo(attempt=3, first_failure_ms=7), runs.go, runs.give_up)
    assert isinstance(held, Rerun)
    assert (held.reason, held.delay_s) == ("limit", pytest.approx(0.5))
    assert (held.redo.attempt, held.redo.first_failure_ms, held.redo.handled) == (3, 7, False)
    assert held.redo.held_since is not None
    assert (runs.handled, runs.claims_given_up) == (1, 1)
    again = limited.run(event, context(attempt=3), held.redo, runs.go, runs.give_up)
    assert isinstance(again, Rerun) and again.redo.held_since == held.redo.held_since  # counted once
    clock.advance(0.5)
    assert limited.run(event, context(attempt=3), again.redo, runs.go, runs.give_up) is HANDLED
    labels = {"group": "g", "handler": "orders"}
    assert registry.get_sample_value("kep_limit_held_total", {**labels, "limit": "rate"}) == 1
    assert registry.get_sample_value("kep_limit_wait_seconds_count", labels) == 2


def test_per_key_limits_are_separate_and_keys_of_any_bytes_are_digests() -> None:
    store, runs = MemoryLimitStore("g", clock=FakeClock()), Runs()
    limited = gate(LimitSpec(rate="1/s", per="field:customer_id"), store)
    assert limited.run(order("c-1"), context(), None, runs.go, runs.give_up) is HANDLED
    assert limited.run(order("c-2"), context(), None, runs.go, runs.give_up) is HANDLED
    assert isinstance(limited.run(order("c-1"), context(), None, runs.go, runs.give_up), Rerun)
    assert limited.key(order("\x00\udcff" * 10_000)) != limited.key(order("c-1"))
    assert len(limited.key(order("\x00" * 100_000))) == 40


def test_a_slot_is_held_only_while_the_handler_runs() -> None:
    store, runs = MemoryLimitStore("g", clock=FakeClock()), Runs()
    limited = gate(LimitSpec(concurrency=1), store)
    inner: list[Outcome] = []

    def go() -> Outcome:
        inner.append(limited.run(order("c-1"), context(), None, runs.go, runs.give_up))  # a second, meanwhile
        return HANDLED

    assert limited.run(order("c-1"), context(), None, go, runs.give_up) is HANDLED
    assert isinstance(inner[0], Rerun) and inner[0].reason == "limit"
    assert limited.run(order("c-1"), context(), None, runs.go, runs.give_up) is HANDLED  # given back


class Unreachable(MemoryLimitStore):
    """A store whose server does not answer (what the Redis and PostgreSQL stores raise then)."""

    def take(self, key: str, interval: float, tolerance: float) -> float:
        raise LimitStoreError("redis limit store at 127.0.0.1:6379/0: Connection refused")


def test_a_store_that_cannot_answer_is_waited_out_with_a_backoff() -> None:
    runs = Runs()
    limited = gate(LimitSpec(rate="5/s", concurrency=2), Unreachable("g"))
    redo = None
    delays = []
    for _ in range(4):
        outcome = limited.run(order("c-1"), context(), redo, runs.go, runs.give_up)
        assert isinstance(outcome, Rerun) and outcome.reason == "store-unavailable"
        assert outcome.redo.attempt == 1
        delays.append(outcome.delay_s)
        redo = outcome.redo
    assert delays == [0.1, 0.25, 0.5, 1.0]
    assert runs.handled == 0 and runs.claims_given_up == 4
    assert limited.run(order("c-1"), context(), None, runs.go, runs.give_up) is not HANDLED
