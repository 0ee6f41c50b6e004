"""The lane path without a broker: CPU time per message of process + settle, against decoding alone.

A lane's work per message is: decode, read the headers and the key, claim the key (memory store), run a no-op
handler, complete the key, settle the outcome (finish the offset). ``decode alone`` is ``codec.decode`` of the
same values: the floor any consumer pays. Both are measured as process CPU time (``time.process_time``), so the
figures hold on a machine busy with other work; variants are interleaved, median of the rounds. No broker.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Message

from bench.context import BenchContext
from bench.result import Result
from bench.stats import median
from kep.consumers.app import App
from kep.consumers.idempotency.memory import MemoryStore
from kep.consumers.metrics import WorkerMetrics
from kep.consumers.retry.classify import ErrorClassifier
from kep.consumers.retry.router import Router
from kep.consumers.runtime.async_runner import AsyncRunner
from kep.consumers.runtime.partition import PartitionState
from kep.consumers.runtime.processor import Processor
from kep.consumers.runtime.settle import Settler
from kep.producers import headers as h
from kep.schemas.codec import codec_for
from shop.samples import sample_events


def _messages(count: int) -> list[Message]:
    codec = codec_for()
    events = sample_events(min(count, 2000), seed=3, kind="orders")
    out = []
    for i in range(count):
        event = events[i % len(events)].model_copy(update={"event_id": str(uuid.UUID(int=i))})
        headers = [(h.EVENT_TYPE, event.avro_name.encode()), (h.IDEMPOTENCY_KEY, event.event_id.encode())]
        out.append(
            Message(
                topic="orders", partition=0, offset=i, key=b"k", value=codec.encode(event), headers=headers,
                timestamp=(1, 1),
            )
        )  # fmt: skip
    return out


def _lane(msgs: list[Message]) -> float:
    app = App("bench", topics=["orders"])
    app.handler("orders")(lambda event, ctx: None)
    metrics = WorkerMetrics("bench", enabled=False)
    processor = Processor(
        app=app,
        group="bench",
        codec=codec_for(),
        store=MemoryStore("bench", ttl_s=3600, lease_s=60),
        router=Router(group="bench", policies={}, dlq_topics={}, classifier=ErrorClassifier()),
        settler=Settler(group="bench", producer=None, metrics=metrics),
        metrics=metrics,
        async_runner=AsyncRunner(),
    )
    state = PartitionState("orders", 0, "orders", None, [])
    state.tracker.extend([m.offset() for m in msgs])  # type: ignore[misc]
    started = time.process_time()
    processor((state, msgs))
    elapsed = time.process_time() - started
    assert state.tracker.processed == len(msgs)
    processor.close()
    return elapsed / len(msgs) * 1e6


def _decode(msgs: list[Message]) -> float:
    decode = codec_for().decode
    started = time.process_time()
    for msg in msgs:
        decode(msg.value())  # type: ignore[arg-type]
    return (time.process_time() - started) / len(msgs) * 1e6


def run(ctx: BenchContext) -> list[Result]:
    count = ctx.scale(40_000, 5_000)
    rounds = ctx.scale(5, 1)
    lanes: list[float] = []
    decodes: list[float] = []
    for _ in range(rounds):
        msgs = _messages(count)
        decodes.append(_decode(msgs))
        lanes.append(_lane(msgs))
    note = f"{rounds} x {count:,} messages, CPU time, no broker"
    overheads = [lane - decode for lane, decode in zip(lanes, decodes, strict=True)]
    return [
        ctx.result("lane path per message", median(lanes), "µs", better="lower", samples=lanes, note=note),
        ctx.result("decode alone per message", median(decodes), "µs", better="lower", samples=decodes),
        ctx.result("lane path beyond decoding", median(overheads), "µs", better="lower", samples=overheads),
    ]
