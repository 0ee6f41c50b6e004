"""Consumer throughput and latency: ``kep run`` at its shipped defaults against a raw confluent-kafka loop.

* ``raw``: a plain ``Consumer`` in a process of its own (``bench/raw_loop.py``: subscribe, ``consume(500)``,
  fastavro decode of each value to a dict, a synchronous commit per batch): the baseline, measured in the same
  run, on the same broker and topic.
* ``kep``: a real ``kep run`` process (``bench/kep_run.py``) with a no-op handler (``bench/kep_app.py``) and
  nothing tuned: decode into the typed event, idempotency (claim and complete per event), event status,
  metrics on, batched commits. One scenario per idempotency store: ``memory`` (target ``kep >= 1.0 x raw``),
  ``sqlite`` (the default store, target ``>= 0.6 x``), ``redis`` and ``postgres`` (reported; skipped when
  the service is not reachable at ``KEP_BENCH_REDIS`` / ``KEP_BENCH_POSTGRES``).
* ``one-process``: ``memory`` and ``sqlite`` again with ``KEP_PROCESSES=1`` (``kep run`` runs one worker
  process per usable core by default): what one process does, reported without a target.
* ``metrics``: ``kep run`` with metrics on (the default) against ``KEP_METRICS_ENABLED=false``, same store
  (memory, so the store's noise does not hide the metrics' cost); target ``>= 0.95 x``.
* ``latency``: added latency at 2,000 events/s (``bench/latency.py``); target p99 added <= 5 ms.
  ``latency-memory`` (only when selected) is the same with ``--idempotency-store memory://``.
* ``key-ordered``: a handler that waits 10 ms on I/O, one message at a time per partition against key-ordered
  workers; target ``>= 20 x``.

Rounds are interleaved (raw and kep alternate, order rotating), ``ROUNDS`` of them, and each figure is the
median over the rounds; each ratio is taken round by round. Every trial reads the same pre-produced topic with
a fresh group and is timed from its first to its last message, so process start and the group join are left
out of both. With each store scenario's rates comes each side's CPU per event: the CPU time of every thread of
the processes that counted (librdkafka's too), from their first event to their last, over the events; a
process bound by its work holding the GIL runs at the rate that figure allows. Select scenarios with
``python -m bench --only consumer --scenario sqlite``.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any

from confluent_kafka import Producer

from bench import latency
from bench.context import BenchContext
from bench.kep_run import KepRun, KepRunResult
from bench.proc import peak_rss_of_pid
from bench.result import Result
from bench.stats import Timing, median
from kep.consumers.app import App
from kep.consumers.context import MessageContext
from kep.consumers.runtime.build import build_worker
from kep.consumers.settings import ConsumerSettings
from kep.producers import headers as h
from kep.schemas.codec import codec_for
from kep.topology import ConsumerGroupSpec, KafkaSettings, TopicSpec, Topology
from shop.samples import sample_events

PARTITIONS = 6
ROUNDS = 5
REDIS_URL = os.environ.get("KEP_BENCH_REDIS", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("KEP_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
#: scenario -> (the --idempotency-store given to kep run, None for the default; target of kep / raw)
STORES: dict[str, tuple[str | None, float | None]] = {
    "memory": ("memory://", 1.0),
    "sqlite": (None, 0.6),
    "redis": (REDIS_URL, None),
    "postgres": (POSTGRES_URL, None),
}
FAST_JOIN = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "fetch_wait_max_ms": 10}


def _produce(ctx: BenchContext, topic: str, count: int, keys: int | None = None) -> None:
    codec = codec_for()
    events = sample_events(min(count, 5000), seed=3, kind="orders")
    producer = Producer(ctx.kafka_conf(linger_ms=5, enable_idempotence=True))
    for i in range(count):
        event = events[i % len(events)].model_copy(update={"event_id": str(uuid.UUID(int=i))})
        key = f"k{i % keys}" if keys else getattr(event, "order_id", None)
        headers = [(h.EVENT_TYPE, event.avro_name.encode()), (h.IDEMPOTENCY_KEY, event.event_id.encode())]
        while True:
            try:
                producer.produce(topic, codec.encode(event), key, headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(60) == 0


def _topology(topic: str, group: str) -> Topology:
    spec = TopicSpec(
        name=topic, partitions=PARTITIONS, value_schema="kep.orders.OrderPlaced", key_field="order_id"
    )
    return Topology(topics=(spec,), groups=(ConsumerGroupSpec(name=group, topics=(topic,)),))


def _kep_trial(ctx: BenchContext, topic: str, count: int, *, metrics: bool, wait_ms: float = 0.0,
               concurrency: str = "partition") -> Timing:  # fmt: skip
    group = f"kep-{uuid.uuid4().hex[:8]}"
    app = App(group, topics=[topic])
    done = threading.Event()
    seen = [0]
    first = [0.0]
    lock = threading.Lock()

    @app.handler(topic)
    def handle(event: Any, context: MessageContext) -> None:
        if wait_ms:
            time.sleep(wait_ms / 1000)  # stands in for I/O
        with lock:
            if not seen[0]:
                first[0] = time.perf_counter()
            seen[0] += 1
            if seen[0] >= count:
                done.set()

    settings = ConsumerSettings(
        **FAST_JOIN, metrics_enabled=metrics, metrics_port=0, idempotency_store="memory://",
        concurrency=concurrency, workers=32, max_in_flight=5000,
    )  # fmt: skip
    kafka = KafkaSettings(bootstrap_servers=ctx.bootstrap_servers)
    worker = build_worker(app, settings, kafka, topology=_topology(topic, group), probe=False)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    done.wait(600)
    elapsed = time.perf_counter() - first[0]
    worker.stop()
    thread.join(60)
    return Timing(count, elapsed)


def rates(ctx: BenchContext, trials: dict[str, list[Timing]], note: str) -> list[Result]:
    """One events/s figure per variant: the median over its trials, every trial kept as a sample."""
    return [
        ctx.result(
            name,
            median([t.per_second for t in ts]),
            "events/s",
            samples=[t.per_second for t in ts],
            note=note,
        )
        for name, ts in trials.items()
    ]


def cpu_per_event(ctx: BenchContext, runs: dict[str, list[KepRunResult]]) -> list[Result]:
    """Process CPU time per event of each variant (every thread of the processes that counted, first event to
    last), median over its trials: where a rate ratio comes from when the processes are CPU-bound."""
    return [
        ctx.sampled(f"CPU per event, {name}", [r.cpu_us_per_event for r in rs], "µs/event", better="lower")
        for name, rs in runs.items()
        if rs and all(r.cpu_s > 0 for r in rs)
    ]


def _kept(runs: list[KepRunResult], result: KepRunResult) -> Timing:
    runs.append(result)
    return _timing(result)


def _ratios(a: list[Timing], b: list[Timing]) -> list[float]:
    return [x.per_second / y.per_second for x, y in zip(a, b, strict=True)]


def _timing(result: KepRunResult) -> Timing:
    return Timing(result.count, result.seconds)


def _reachable(store: str | None) -> str | None:
    """None when ``store`` answers; otherwise why not (the scenario is then skipped)."""
    if store is None or store.startswith("memory"):
        return None
    from kep.consumers.idempotency.factory import open_store

    try:
        opened = open_store(store, f"bench-check-{uuid.uuid4().hex[:6]}")
        opened.check()
        opened.close()
    except Exception as exc:  # noqa: BLE001 - any reason is a reason to skip
        return f"{type(exc).__name__}: {exc}".split("@")[-1][:200]
    return None


def _store(
    ctx: BenchContext, kep: KepRun, topic: str, count: int, name: str, *, one_process: bool = False
) -> list[Result]:
    """``kep run`` with the scenario's store against the raw loop; ``one_process``: with ``KEP_PROCESSES=1``
    (what one worker process does; reported, no target)."""
    store, target = STORES[name]
    why = _reachable(store)
    if why is not None:
        print(f"bench.consumer: scenario {name} skipped: {why}")
        return []
    rounds = ctx.scale(ROUNDS, 1)
    env = {"KEP_PROCESSES": "1"} if one_process else None
    name += ", 1 process" if one_process else ""
    label = f"kep run, {name}" + (" (default store)" if store is None else "")
    raw_runs: list[KepRunResult] = []
    kep_runs: list[KepRunResult] = []
    trials = ctx.interleaved(
        {
            "raw": lambda: _kept(raw_runs, kep.raw_trial(topic, count)),
            label: lambda: _kept(kep_runs, kep.trial(topic, count, store=store, env=env)),
        },
        rounds,
    )
    ratio = _ratios(trials[label], trials["raw"])
    defaults = "kep run with KEP_PROCESSES=1" if one_process else "kep run at its defaults"
    note = f"{rounds} x {count:,} OrderPlaced, {PARTITIONS} partitions, {defaults}"
    results = rates(ctx, {f"raw ({name} rounds)": trials["raw"], label: trials[label]}, note)
    target = None if one_process else target
    results.append(ctx.result(f"kep / raw, {name}", median(ratio), "x", target=target, samples=ratio))
    results += cpu_per_event(ctx, {f"raw ({name} rounds)": raw_runs, label: kep_runs})
    return results


def _metrics(ctx: BenchContext, kep: KepRun, topic: str, count: int) -> list[Result]:
    rounds = ctx.scale(ROUNDS, 1)
    off = {"KEP_METRICS_ENABLED": "false"}
    trials = ctx.interleaved(
        {
            "kep run, metrics on": lambda: _timing(kep.trial(topic, count, store="memory://")),
            "kep run, metrics off": lambda: _timing(kep.trial(topic, count, store="memory://", env=off)),
        },
        rounds,
    )
    ratio = _ratios(trials["kep run, metrics on"], trials["kep run, metrics off"])
    note = f"{rounds} x {count:,} OrderPlaced, memory store"
    results = rates(ctx, trials, note)
    results.append(ctx.result("metrics on / off", median(ratio), "x", target=0.95, samples=ratio))
    return results


def run(ctx: BenchContext) -> list[Result]:
    count = ctx.scale(100_000, 10_000)
    kep = KepRun(ctx.bootstrap_servers)
    results: list[Result] = []
    topic: str | None = None
    for name in [*STORES, "metrics", "one-process"]:
        if not ctx.wants(name):
            continue
        if topic is None:
            topic = ctx.topic(PARTITIONS, prefix="bench-consume")
            _produce(ctx, topic, count)
        if name == "metrics":
            results += _metrics(ctx, kep, topic, count)
        elif name == "one-process":  # what one worker process does, with the memory and the default store
            results += _store(ctx, kep, topic, count, "memory", one_process=True)
            results += _store(ctx, kep, topic, count, "sqlite", one_process=True)
        else:
            results += _store(ctx, kep, topic, count, name)
    if ctx.wants("latency"):
        results += latency.run(ctx, kep)
    if "latency-memory" in ctx.scenarios:  # the same with the memory store: what the default store adds
        results += latency.run(ctx, kep, store="memory://")
    if ctx.wants("key-ordered"):
        results += _key_ordered(ctx)
    rss = peak_rss_of_pid(os.getpid())
    if rss:
        results.append(ctx.result("peak RSS of the bench process", rss / 2**20, "MiB", better="lower"))
    return results


def _key_ordered(ctx: BenchContext) -> list[Result]:
    partitions = 2
    topic = ctx.topic(partitions, prefix="bench-keyed")
    slow_count, fast_count = ctx.scale(300, 100), ctx.scale(3000, 1000)
    _produce(ctx, topic, fast_count + slow_count, keys=500)
    one_at_a_time = _kep_trial(ctx, topic, slow_count, metrics=False, wait_ms=10)
    keyed = _kep_trial(ctx, topic, fast_count, metrics=False, wait_ms=10, concurrency="key")
    note = f"handler waits 10 ms; {partitions} partitions, 500 keys, 32 workers per partition"
    return [
        ctx.result(
            "one at a time per partition (10 ms handler)", one_at_a_time.per_second, "events/s", note=note
        ),
        ctx.result("key-ordered (10 ms handler)", keyed.per_second, "events/s", note=note),
        ctx.result(
            "key-ordered / one at a time", keyed.per_second / one_at_a_time.per_second, "x", target=20.0
        ),
    ]
