"""Retries on the main path: throughput when 10 % of events fail once and succeed on their first retry, against
the same run with no failures; and how late retries ran against their due time.

Both variants read the same pre-produced topic with a fresh group and are timed from the first to the last
first execution on the main topic (the retry tier's own delay is not the main path's cost). Target: with
failures >= 0.85 x without. Lateness = time a retry ran - its ``kep-due-time`` (never negative by design), with
jitter on, so records due sooner stand behind records due later on the tier; target p99 <= 1 s.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from bench.consumer import FAST_JOIN, PARTITIONS, _produce, rates
from bench.context import BenchContext
from bench.result import Result
from bench.stats import Timing, median
from kep.consumers.app import App
from kep.consumers.context import MessageContext
from kep.consumers.runtime.build import build_worker
from kep.consumers.settings import ConsumerSettings
from kep.producers import headers as h
from kep.topology import ConsumerGroupSpec, KafkaSettings, RetrySpec, TopicSpec, Topology, admin

DELAY = "1s"
JITTER = (
    0.5  # each retry's delay lengthened by up to 50 %: retry records are not due in the order they are read
)


class _Flaky(Exception):
    pass


def _trial(ctx: BenchContext, topic: str, count: int, *, fail_every: int, lateness: list[float]) -> Timing:
    group = f"retry-{uuid.uuid4().hex[:8]}"
    spec = TopicSpec(
        name=topic, partitions=PARTITIONS, value_schema="kep.orders.OrderPlaced", key_field="order_id"
    )
    topology = Topology(
        topics=(spec,),
        groups=(
            ConsumerGroupSpec(name=group, topics=(topic,), retry=RetrySpec(delays=(DELAY,), jitter=JITTER)),
        ),
    )
    kafka = KafkaSettings(bootstrap_servers=ctx.bootstrap_servers)
    admin.apply(admin.plan(topology, kafka), kafka)
    app = App(group, topics=[topic])
    lock = threading.Lock()
    first_runs, retries, started = [0], [0], [0.0]
    expected_retries = count // fail_every if fail_every else 0
    main_done, retries_done = threading.Event(), threading.Event()

    @app.handler(topic)
    def handle(event: Any, context: MessageContext) -> None:
        now = time.time() * 1000
        with lock:
            if context.attempt > 1:
                lateness.append(now - (h.header_int(context.headers, h.DUE_TIME) or now))
                retries[0] += 1
                if retries[0] >= expected_retries:
                    retries_done.set()
                return
            if not first_runs[0]:
                started[0] = time.perf_counter()
            first_runs[0] += 1
            n = first_runs[0]
            if n >= count:
                main_done.set()
        if fail_every and int(event.event_id[-8:], 16) % fail_every == 0:
            raise _Flaky("fails once")

    settings = ConsumerSettings(
        **FAST_JOIN, metrics_enabled=False, metrics_port=0, idempotency_store="memory://"
    )
    worker = build_worker(app, settings, kafka, topology=topology, probe=False)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    main_done.wait(600)
    elapsed = time.perf_counter() - started[0]
    if expected_retries:
        retries_done.wait(120)
    worker.stop()
    thread.join(60)
    return Timing(count, elapsed)


def run(ctx: BenchContext) -> list[Result]:
    count = ctx.scale(50_000, 5_000)
    repeats = ctx.scale(3, 1)
    topic = ctx.topic(PARTITIONS, prefix="bench-retry")
    _produce(ctx, topic, count)
    lateness: list[float] = []
    trials = ctx.interleaved(
        {
            "no failures": lambda: _trial(ctx, topic, count, fail_every=0, lateness=[]),
            "10% fail once": lambda: _trial(ctx, topic, count, fail_every=10, lateness=lateness),
        },
        repeats,
    )
    ratios = [
        a.per_second / b.per_second
        for a, b in zip(trials["10% fail once"], trials["no failures"], strict=True)
    ]
    note = f"{repeats} x {count:,} events, {PARTITIONS} partitions, retry tier {DELAY}, jitter {JITTER}"
    ordered = sorted(lateness)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else float("nan")

    results = rates(ctx, trials, note)
    results += [
        ctx.result("10% fail once / no failures", median(ratios), "x", target=0.85, samples=ratios),
        ctx.result("retry lateness p50", pct(0.5), "ms", better="lower", note=f"{len(ordered)} retries"),
        ctx.result("retry lateness p99", pct(0.99), "ms", target=1000.0, better="lower"),
        ctx.result("retry lateness max", ordered[-1] if ordered else float("nan"), "ms", better="lower"),
        ctx.result(
            "retry lateness min (must be >= 0)", ordered[0] if ordered else float("nan"), "ms", target=0.0
        ),
    ]
    return results
