"""Claims and completions per lane batch (``runtime/lane_keys.py``), on a real SQLite store, no broker.

A batch's keys are claimed in one store call and completed in one, and the guarantees of the per-key path hold:
a key met twice in a batch runs once, an offset is finished only once its key is completed, a revoked batch
gives up the claims it did not use and still completes what it handled, and metrics counted per lane batch add
up.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Message
from prometheus_client import CollectorRegistry

from kep.consumers.app import App
from kep.consumers.context import MessageContext
from kep.consumers.idempotency.base import ClaimState, Key
from kep.consumers.idempotency.sqlite import SqliteStore
from kep.consumers.metrics import WorkerMetrics
from kep.consumers.retry.classify import ErrorClassifier
from kep.consumers.retry.policy import RetryPolicy
from kep.consumers.retry.router import Router
from kep.consumers.runtime import lane_keys
from kep.consumers.runtime.async_runner import AsyncRunner
from kep.consumers.runtime.partition import PartitionState
from kep.consumers.runtime.processor import Processor
from kep.consumers.runtime.settle import Settler
from kep.consumers.runtime.worker import MERGED_BATCH
from kep.producers import headers as h
from kep.schemas.codec import codec_for
from kep.topology.model import ConsumerGroupSpec, RetrySpec
from shop.orders import LineItem, OrderPlaced

pytestmark = pytest.mark.unit

SPEC = ConsumerGroupSpec(name="g", topics=("orders",), retry=RetrySpec(delays=("1s",)))


class CountingStore(SqliteStore):
    """The SQLite store, counting the store calls the lanes make."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []

    def claim(self, key: Key) -> ClaimState:
        self.calls.append("claim")
        return super().claim(key)

    def complete(self, key: Key) -> None:
        self.calls.append("complete")
        super().complete(key)

    def claim_many(self, keys: Sequence[Key]) -> list[ClaimState]:
        self.calls.append("claim_many")
        return super().claim_many(keys)

    def complete_many(self, keys: Sequence[Key]) -> None:
        self.calls.append("complete_many")
        super().complete_many(keys)

    def release_many(self, keys: Sequence[Key]) -> None:
        self.calls.append("release_many")
        super().release_many(keys)

    def settle_many(self, done: Sequence[Key], released: Sequence[Key]) -> None:
        self.calls.append("settle_many")
        super().settle_many(done, released)


def messages(ids: list[str]) -> list[Message]:
    codec = codec_for()
    out = []
    for offset, event_id in enumerate(ids):
        item = LineItem(sku="s", quantity=1, unit_price_cents=5)
        event = OrderPlaced(
            event_id=event_id, order_id="o", customer_id="c", items=[item], amount_cents=5, currency="EUR"
        )
        out.append(
            Message(
                topic="orders", partition=0, offset=offset, key=b"o", value=codec.encode(event),
                headers=[(h.IDEMPOTENCY_KEY, event_id.encode())], timestamp=(1, 1),
            )
        )  # fmt: skip
    return out


def build(
    tmp_path: Path, handler: Callable[[Any, MessageContext], None], metrics: WorkerMetrics | None = None
) -> tuple[Processor, CountingStore]:
    app = App("g", topics=["orders"])
    app.handler("orders")(handler)
    store = CountingStore(tmp_path / "idem.db", "g", ttl_s=3600, lease_s=60)
    metrics = metrics or WorkerMetrics("g", enabled=False)
    processor = Processor(
        app=app,
        group="g",
        codec=codec_for(),
        store=store,
        router=Router(
            group="g",
            policies={"orders": RetryPolicy.from_topology(SPEC, "orders")},
            dlq_topics={"orders": SPEC.dlq_topic("orders")},
            classifier=ErrorClassifier(),
        ),
        settler=Settler(group="g", producer=None, metrics=metrics),
        metrics=metrics,
        async_runner=AsyncRunner(),
    )
    return processor, store


def partition(msgs: list[Message]) -> PartitionState:
    state = PartitionState("orders", 0, "orders", None, [])
    state.tracker.extend([m.offset() for m in msgs])  # type: ignore[misc]
    return state


def test_a_batch_claims_once_completes_once_and_runs_a_repeated_key_once(tmp_path: Path) -> None:
    ran: list[str] = []
    processor, store = build(tmp_path, lambda event, ctx: ran.append(event.event_id))
    ids = [str(uuid.uuid4()) for _ in range(5)]
    msgs = messages([*ids[:3], ids[0], *ids[3:]])  # the first event comes again in the same batch
    state = partition(msgs)
    processor((state, msgs))
    assert sorted(ran) == sorted(ids)  # each once: the repeat is a duplicate
    assert state.tracker.processed == len(msgs)  # every offset finished
    assert store.calls.count("claim_many") == 1 and store.calls.count("claim") == 1  # only the repeat alone
    assert "complete" not in store.calls
    other = SqliteStore(tmp_path / "idem.db", "g", ttl_s=3600, lease_s=60)
    assert other.claim_many(ids) == [ClaimState.DONE] * len(ids)  # completed before the offsets finished
    other.close()
    processor.close()


def test_a_full_lane_batch_completes_its_keys_in_one_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lane batch as big as merging makes it completes every key in one store call (one SQLite transaction:
    each rewrites the pages its keys touch), when its handlers are quicker than ``FLUSH_AFTER_S``."""
    monkeypatch.setattr(lane_keys, "FLUSH_AFTER_S", 3600.0)  # this test is about the count, not the clock
    processor, store = build(tmp_path, lambda event, ctx: None)
    msgs = messages([str(uuid.uuid4()) for _ in range(MERGED_BATCH)])
    state = partition(msgs)
    processor((state, msgs))
    assert state.tracker.processed == len(msgs)
    assert store.calls.count("settle_many") == 1 and "complete_many" not in store.calls
    processor.close()


def test_a_revoked_batch_completes_what_it_handled_and_gives_up_the_other_claims(tmp_path: Path) -> None:
    ids = [str(uuid.uuid4()) for _ in range(6)]
    msgs = messages(ids)
    state = partition(msgs)
    ran: list[str] = []

    def handle(event: Any, ctx: MessageContext) -> None:
        ran.append(event.event_id)
        if len(ran) == 2:
            state.token.cancel()  # revoked while the second event runs

    processor, store = build(tmp_path, handle)
    processor((state, msgs))
    assert ran == ids[:2]
    assert state.tracker.processed == 2  # the two handled offsets are finished: the revoke commits them
    other = SqliteStore(tmp_path / "idem.db", "g", ttl_s=3600, lease_s=60)
    assert other.claim_many(ids) == [ClaimState.DONE] * 2 + [ClaimState.NEW] * 4  # not held for a lease
    other.close()
    processor.close()


def test_a_failed_handler_releases_its_key_and_the_batch_goes_on(tmp_path: Path) -> None:
    ids = [str(uuid.uuid4()) for _ in range(4)]

    def handle(event: Any, ctx: MessageContext) -> None:
        if event.event_id == ids[1]:
            raise RuntimeError("boom")

    processor, store = build(tmp_path, handle)
    msgs = messages(ids)
    state = partition(msgs)
    processor((state, msgs))
    assert state.tracker.processed == len(ids)  # no producer: the retry is a logged drop, finished too
    # the failed claim is given up in the same transaction as the completions
    assert store.calls.count("settle_many") == 1 and "release_many" not in store.calls
    other = SqliteStore(tmp_path / "idem.db", "g", ttl_s=3600, lease_s=60)
    assert other.claim_many(ids) == [ClaimState.DONE, ClaimState.NEW, ClaimState.DONE, ClaimState.DONE]
    other.close()
    processor.close()


def test_handled_metrics_counted_per_lane_batch_add_up(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics("g", registry=registry)
    processor, _ = build(tmp_path, lambda event, ctx: None, metrics)
    msgs = messages([str(uuid.uuid4()) for _ in range(7)])
    processor((partition(msgs), msgs))
    labels = {"group": "g", "topic": "orders"}
    assert registry.get_sample_value("kep_messages_processed_total", labels) == 7
    assert registry.get_sample_value("kep_handler_duration_seconds_count", labels) == 7
    assert registry.get_sample_value("kep_handler_duration_seconds_bucket", {**labels, "le": "+Inf"}) == 7
    processor.close()


def test_a_batch_holds_its_keys_ahead_and_leaves_a_key_another_lane_runs(tmp_path: Path) -> None:
    """Keys claimed ahead are the batch's in the process until their completion or release is stored; a key
    another lane of the process runs is not claimed ahead (the store would answer NEW: the claim is the
    process's), so its message claims it when it comes, and waits."""
    from kep.consumers.runtime.keys_in_flight import KeysInFlight

    store = SqliteStore(tmp_path / "keys.db", "g", ttl_s=60, lease_s=30)
    in_flight = KeysInFlight(30.0)
    state = PartitionState("orders", 0, "orders", None, [])
    settled: list[Any] = []
    try:
        assert in_flight.take("running elsewhere", "another lane")
        keys = lane_keys.LaneKeys(store, state, lambda s, m, o: settled.append(m), in_flight=in_flight)
        keys.claim_ahead(["mine", "unused", "running elsewhere"])
        assert not in_flight.take("mine", "another lane")
        assert not in_flight.take("unused", "another lane")
        assert in_flight.take("running elsewhere", "another lane")  # still the other lane's
        assert keys.claim("mine") is ClaimState.NEW
        keys.defer("mine", "message")  # type: ignore[arg-type]
        keys.flush()  # completion stored: given back
        keys.release_unused()  # "unused" released: given back
        assert settled == ["message"]
        assert in_flight.take("mine", "another lane") and in_flight.take("unused", "another lane")
        assert store.claim("mine") is ClaimState.DONE
    finally:
        store.close()
