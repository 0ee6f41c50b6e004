"""A failure injected at each step of a message's path becomes that message's outcome (no broker).

Steps: the value, a header, the key, the store refusing the key, the store unavailable, the handler, the store
inside ``ctx.transaction()``, routing the failure, a log call, a metric. None of them raises out of
``process``; the lane loop then settles and moves on.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Message

from kep.consumers.app import App
from kep.consumers.context import MessageContext
from kep.consumers.errors import IdempotencyStoreError
from kep.consumers.idempotency.base import ClaimState, Key
from kep.consumers.idempotency.memory import MemoryStore
from kep.consumers.metrics import WorkerMetrics
from kep.consumers.outcome import DUPLICATE, HANDLED, Forward, Outcome, Rerun
from kep.consumers.retry.classify import ErrorClassifier
from kep.consumers.retry.headers import Provenance
from kep.consumers.retry.policy import RetryPolicy
from kep.consumers.retry.router import Router
from kep.consumers.runtime import processor as processor_module
from kep.consumers.runtime.async_runner import AsyncRunner
from kep.consumers.runtime.partition import PartitionState
from kep.consumers.runtime.processor import Processor
from kep.consumers.runtime.settle import Settler
from kep.producers import headers as h
from kep.schemas.codec import codec_for
from kep.topology.model import ConsumerGroupSpec, RetrySpec
from shop.orders import LineItem, OrderPlaced

pytestmark = pytest.mark.unit

SPEC = ConsumerGroupSpec(name="g", topics=("orders",), retry=RetrySpec(delays=("1s",)))
TIER = SPEC.retry_tiers("orders")[0].topic
DLQ = SPEC.dlq_topic("orders")


def event() -> OrderPlaced:
    item = LineItem(sku="s", quantity=1, unit_price_cents=5)
    return OrderPlaced(
        event_id=str(uuid.uuid4()),
        order_id="o-1",
        customer_id="c",
        items=[item],
        amount_cents=5,
        currency="EUR",
    )


def message(
    value: bytes | None = None, headers: list[tuple[str, bytes]] | None = None, *, topic: str = "orders"
) -> Message:
    e = event()
    if value is None:
        value = codec_for().encode(e)
    if headers is None:
        headers = [(h.IDEMPOTENCY_KEY, e.event_id.encode())]
    return Message(
        topic=topic, partition=0, offset=7, key=b"k", value=value, headers=headers, timestamp=(1, 3)
    )


class Store(MemoryStore):
    """A memory store whose claim can fail on demand."""

    claim_error: BaseException | None = None

    def claim(self, key: Key) -> ClaimState:
        if self.claim_error is not None:
            raise self.claim_error
        return super().claim(key)


def build(
    handler: Callable[[Any, MessageContext], None] = lambda e, c: None, *, key: str = "header"
) -> tuple[Processor, Store]:
    app = App("g", topics=["orders"], idempotency_key=key)
    app.handler("orders")(handler)
    store = Store("g", ttl_s=60, lease_s=60)
    metrics = WorkerMetrics("g", enabled=False)
    router = Router(
        group="g",
        policies={"orders": RetryPolicy.from_topology(SPEC, "orders", rng=random.Random(0))},
        dlq_topics={"orders": DLQ},
        classifier=ErrorClassifier(),
    )
    processor = Processor(
        app=app,
        group="g",
        codec=codec_for(),
        store=store,
        router=router,
        settler=Settler(group="g", producer=None, metrics=metrics),
        metrics=metrics,
        async_runner=AsyncRunner(),
    )
    return processor, store


def main() -> PartitionState:
    return PartitionState("orders", 0, "orders", None, [])


def tier() -> PartitionState:
    return PartitionState(TIER, 0, "orders", "1s", [])


def dead_letter(outcome: Outcome, exception_type: str, text: str = "") -> None:
    assert isinstance(outcome, Forward), outcome
    assert (outcome.topic, outcome.kind) == (DLQ, "dead-letter")
    assert h.header_str(outcome.headers, h.EXCEPTION_TYPE) == exception_type
    assert text in (h.header_str(outcome.headers, h.EXCEPTION_MESSAGE) or "")


def test_an_undecodable_value_is_dead_lettered() -> None:
    processor, _ = build()
    dead_letter(processor.process(main(), message(b"\xc3\x01garbage")), "kep.schemas.errors.DecodeError")
    dead_letter(processor.process(main(), message(b"")), "kep.schemas.errors.DecodeError")


def test_a_key_that_cannot_be_read_is_dead_lettered() -> None:
    processor, _ = build(key="field:no_such_field")
    dead_letter(processor.process(main(), message()), "kep.consumers.errors.RecordError", "idempotency key")


def test_a_non_utf8_key_header_is_the_exact_bytes() -> None:
    seen: list[str] = []
    processor, store = build(lambda e, ctx: seen.append(ctx.idempotency_key))
    assert processor.process(main(), message(headers=[(h.IDEMPOTENCY_KEY, b"\xff\x00")])) is HANDLED
    assert processor.process(main(), message(headers=[(h.IDEMPOTENCY_KEY, b"\xff\x00")])) is DUPLICATE
    assert seen == ["\\xff\x00"]
    assert store.claim(b"\xff\x00") is ClaimState.DONE


@pytest.mark.parametrize("attempt", [b"--1", b"9" * 5000, b"-5", b"99999999999999999999", "\u0663".encode()])
def test_a_hostile_attempt_header_counts_from_here(attempt: bytes) -> None:
    runs: list[int] = []

    def fail(e: Any, ctx: MessageContext) -> None:
        runs.append(ctx.attempt)
        raise TimeoutError("still failing")

    processor, _ = build(fail)
    provenance = Provenance.first_failure(
        topic="orders", partition=0, offset=1, timestamp_ms=1, consumer_group="g", exc=KeyError("x"), now_ms=1
    )
    headers = [(n, attempt if n == h.ATTEMPT else v) for n, v in provenance.to_headers()]
    outcome = processor.process(tier(), message(headers=headers, topic=TIER))  # type: ignore[arg-type]
    assert runs == [1]
    assert isinstance(outcome, Forward) and outcome.topic == TIER  # one retry left, as for a first failure
    assert h.header_int(outcome.headers, h.ATTEMPT) == 1


def test_a_store_refusing_the_key_dead_letters_the_record() -> None:
    processor, store = build()
    store.claim_error = ValueError("key not storable")
    dead_letter(processor.process(main(), message()), "kep.consumers.errors.RecordError", "refused the key")


def test_an_unavailable_store_is_waited_out_never_dead_lettered() -> None:
    processor, store = build()
    store.claim_error = IdempotencyStoreError("down")
    first = processor.process(main(), message())
    assert isinstance(first, Rerun) and first.reason == "store-unavailable" and first.redo.attempt == 1
    again = processor.process(main(), message(), first.redo)
    assert isinstance(again, Rerun) and again.delay_s > first.delay_s  # backing off


def test_a_claim_held_by_another_worker_is_waited_for() -> None:
    processor, store = build()
    msg = message()
    other = Store("g", ttl_s=60, lease_s=60)
    other._entries = store._entries
    other.claim(h.header_str(msg.headers(), h.IDEMPOTENCY_KEY) or "")
    outcome = processor.process(main(), msg)
    assert isinstance(outcome, Rerun) and outcome.reason == "claim-busy"


def test_a_handler_failure_goes_to_the_retry_tier() -> None:
    def fail(e: Any, ctx: MessageContext) -> None:
        raise TimeoutError("slow")

    processor, _ = build(fail)
    outcome = processor.process(main(), message())
    assert isinstance(outcome, Forward) and outcome.topic == TIER


def test_a_store_failure_inside_the_transaction_is_waited_out_without_using_an_attempt() -> None:
    class BrokenTx(Store):
        def transaction(self, key: Key) -> Any:
            raise IdempotencyStoreError("connection reset")

    def write(e: Any, ctx: MessageContext) -> None:
        with ctx.transaction():
            pass

    processor, _ = build(write)
    processor.store = BrokenTx("g", ttl_s=60, lease_s=60)
    outcome = processor.process(main(), message())
    assert isinstance(outcome, Rerun) and outcome.reason == "store-unavailable"
    assert outcome.redo.attempt == 1


def test_routing_that_fails_dead_letters_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(e: Any, ctx: MessageContext) -> None:
        raise TimeoutError("slow")

    processor, _ = build(fail)
    monkeypatch.setattr(Provenance, "first_failure", classmethod(lambda cls, **kw: 1 / 0))
    dead_letter(processor.process(main(), message()), "builtins.TimeoutError", "routing it failed")


def test_a_log_call_or_a_metric_that_raises_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def __getattr__(self, name: str) -> Any:
            def raise_(*args: Any, **kwargs: Any) -> None:
                raise OSError("log sink gone")

            return raise_

    def fail(e: Any, ctx: MessageContext) -> None:
        raise TimeoutError("slow")

    processor, _ = build(fail)
    monkeypatch.setattr(processor_module, "log", Broken())
    processor.metrics = Broken()  # type: ignore[assignment]
    outcome = processor.process(main(), message())
    assert isinstance(outcome, Forward) and outcome.topic == TIER


def test_the_lane_loop_runs_a_message_again_until_the_store_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    processor, store = build(lambda e, ctx: calls.append(ctx.attempt))
    state = main()
    state.tracker.extend([7])
    failures = iter([IdempotencyStoreError("down"), IdempotencyStoreError("down"), None])

    def claim(key: Key) -> ClaimState:
        error = next(failures)
        if error is not None:
            raise error
        return MemoryStore.claim(store, key)

    store.claim = claim  # type: ignore[method-assign]
    monkeypatch.setattr(processor_module, "STORE_BACKOFF_S", (0.0,))
    processor((state, [message()]))
    assert calls == [1] and state.tracker.processed == 8
