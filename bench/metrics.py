"""Worker metrics: the hot-path cost of ``WorkerMetrics.handled()`` and the time of a worker scrape.

Per message the runtime calls ``handled(topic, duration)`` (a counter and a histogram). Variants, interleaved
in the same run, each N calls:

* ``empty method``: a method that does nothing, the floor of any Python call (baseline);
* ``disabled``: ``WorkerMetrics(enabled=False).handled``: must cost about the baseline;
* ``enabled``: ``WorkerMetrics(enabled=True).handled`` (cached labelled children);
* ``stock children``: the same two updates on ``prometheus_client`` children held in local variables, the
  least the client library costs (targets: enabled within 1.3x of it, disabled within 2x of the empty method);
* ``uncached labels()``: the same updates through ``Counter.labels(...)`` / ``Histogram.labels(...)`` at each
  call, what code without a child cache pays.

Scrape: ``generate_latest`` of a worker registry bound to a state source of 64 partitions (no probe), against
the same samples in stock labelled Gauges. No broker is needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bench.context import BenchContext
from bench.result import Result
from bench.stats import Timing, median, timed
from kep.consumers.metrics import PartitionState, WorkerMetrics
from kep.consumers.metrics.worker import HANDLER_BUCKETS

ENABLED_OVER_STOCK_TARGET = 1.3
DISABLED_OVER_EMPTY_TARGET = 2.0
SCRAPE_TARGET_MS = 50.0
PARTITIONS = 64


class _Empty:
    def handled(self, topic: str, duration_s: float) -> None:
        pass


class _Source:
    def __init__(self, states: Sequence[PartitionState]) -> None:
        self._states = list(states)

    def partition_states(self) -> Sequence[PartitionState]:
        return self._states

    def in_flight(self) -> int:
        return 17


def _calls(handled: Callable[[str, float], None], count: int) -> Timing:
    def body() -> None:
        for _ in range(count):
            handled("orders", 0.0042)

    return timed(count, body)


def _families(registry: CollectorRegistry) -> tuple[Counter, Histogram]:
    processed = Counter("bench_processed", "x", ["group", "topic"], registry=registry)
    duration = Histogram(
        "bench_duration_seconds", "x", ["group", "topic"], buckets=HANDLER_BUCKETS, registry=registry
    )
    return processed, duration


def _stock_children() -> Callable[[str, float], None]:
    processed, duration = _families(CollectorRegistry())
    counter, histogram = processed.labels("billing", "orders"), duration.labels("billing", "orders")

    def handled(topic: str, duration_s: float) -> None:
        counter.inc()
        histogram.observe(duration_s)

    return handled


def _uncached() -> Callable[[str, float], None]:
    processed, duration = _families(CollectorRegistry())

    def handled(topic: str, duration_s: float) -> None:
        processed.labels("billing", topic).inc()
        duration.labels("billing", topic).observe(duration_s)

    return handled


def _hot_path(ctx: BenchContext) -> list[Result]:
    count = ctx.scale(100_000, 10_000)
    enabled = WorkerMetrics("billing", registry=CollectorRegistry())
    disabled = WorkerMetrics("billing", registry=CollectorRegistry(), enabled=False)
    variants: dict[str, Callable[[str, float], None]] = {
        "empty method": _Empty().handled,
        "disabled": disabled.handled,
        "enabled": enabled.handled,
        "stock children": _stock_children(),
        "uncached labels()": _uncached(),
    }
    trials = ctx.interleaved({name: partial(_calls, f, count) for name, f in variants.items()}, 5)
    ns = {name: median([t.micros_each * 1000 for t in runs]) for name, runs in trials.items()}
    base = ns["empty method"]
    out = [
        ctx.result(
            f"handled() {name}",
            value,
            "ns/call",
            better="lower",
            samples=[t.micros_each * 1000 for t in trials[name]],
        )
        for name, value in ns.items()
    ]
    out += [
        ctx.result(
            "disabled / empty method",
            ns["disabled"] / base,
            "x",
            better="lower",
            target=DISABLED_OVER_EMPTY_TARGET,
        ),
        ctx.result(
            "enabled / stock children",
            ns["enabled"] / ns["stock children"],
            "x",
            better="lower",
            target=ENABLED_OVER_STOCK_TARGET,
            note="what the per-topic cache and the enabled check add to prometheus_client itself",
        ),
        ctx.result(
            "enabled / uncached labels()", ns["enabled"] / ns["uncached labels()"], "x", better="lower"
        ),
    ]
    return out


def _scrape(ctx: BenchContext) -> list[Result]:
    count = ctx.scale(50, 10)
    now_states = [
        PartitionState(
            f"topic-{p % 4}", p, committed=1000 + p, processed=1100 + p, log_end=1200 + p, paused=p % 8 == 0
        )
        for p in range(PARTITIONS)
    ]
    worker = WorkerMetrics("billing", registry=CollectorRegistry())
    worker.bind(_Source(now_states))
    worker.declare([f"topic-{i}" for i in range(4)])
    stock = CollectorRegistry()
    labels = ["group", "topic", "partition"]
    gauges = [Gauge(f"stock_{i}", "x", labels, registry=stock) for i in range(6)]
    for s in now_states:
        for gauge in gauges:
            gauge.labels("billing", s.topic, str(s.partition)).set(s.log_end or 0)

    def scrapes(registry: CollectorRegistry) -> Callable[[], Timing]:
        def run() -> Timing:
            return timed(count, lambda: [generate_latest(registry) for _ in range(count)])

        return run

    trials = ctx.interleaved({"worker": scrapes(worker.registry), "stock gauges": scrapes(stock)}, 5)
    ms = {name: median([t.micros_each / 1000 for t in runs]) for name, runs in trials.items()}
    return [
        ctx.result(
            f"scrape, {PARTITIONS} partitions",
            ms["worker"],
            "ms",
            better="lower",
            target=SCRAPE_TARGET_MS,
            samples=[t.micros_each / 1000 for t in trials["worker"]],
        ),
        ctx.result("scrape / stock gauges", ms["worker"] / ms["stock gauges"], "x", better="lower"),
    ]


def run(ctx: BenchContext) -> list[Result]:
    started = time.perf_counter()
    results = _hot_path(ctx) + _scrape(ctx)
    results.append(ctx.result("bench time", time.perf_counter() - started, "s", better="lower"))
    return results
