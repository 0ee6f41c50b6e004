"""Retries on the main path: throughput when 10 % of events fail once and succeed on their first retry, against
the same run with no failures; and how late retries ran against their due time.

Both variants are ``kep run`` processes at their shipped defaults (``bench/kep_run.py``: the default SQLite
store, metrics and event status on) whose group retries through one tier (``DELAY``, jitter ``JITTER``). They
read the same pre-produced topic with a fresh group and are timed from the first to the last first execution
on the main topic (the retry tier's own delay is not the main path's cost). Rounds are interleaved; the ratio
is taken round by round and its median reported, with each variant's CPU per main event (``bench.consumer``;
with failures it runs to the last retry, so it includes what the failures and their retries cost). Target:
with failures >= 0.85 x without. Lateness = time a
retry ran - its ``kep-due-time`` (never negative by design), with jitter on, so records due sooner stand behind
records due later on the tier; target p99 <= 1 s.
"""

from __future__ import annotations

from bench.consumer import PARTITIONS, ROUNDS, _produce, cpu_per_event, rates
from bench.context import BenchContext
from bench.kep_run import KepRun, KepRunResult
from bench.result import Result
from bench.stats import Timing, median

DELAY = "1s"
JITTER = (
    0.5  # each retry's delay lengthened by up to 50 %: retry records are not due in the order they are read
)


def run(ctx: BenchContext) -> list[Result]:
    count = ctx.scale(50_000, 5_000)
    rounds = ctx.scale(ROUNDS, 1)
    topic = ctx.topic(PARTITIONS, prefix="bench-retry")
    _produce(ctx, topic, count)
    kep = KepRun(ctx.bootstrap_servers)
    retry = {"delays": [DELAY], "jitter": JITTER}
    lateness: list[float] = []
    runs: dict[str, list[KepRunResult]] = {"no failures": [], "10% fail once": []}

    def trial(fail_every: int) -> Timing:
        env = {"BENCH_FAIL_EVERY": str(fail_every)} if fail_every else {}
        result = kep.trial(topic, count, retry=retry, env=env)
        runs["10% fail once" if fail_every else "no failures"].append(result)
        if fail_every:
            lateness.extend(result.lateness_ms)
        return Timing(result.count, result.seconds)

    trials = ctx.interleaved({"no failures": lambda: trial(0), "10% fail once": lambda: trial(10)}, rounds)
    ratios = [
        a.per_second / b.per_second
        for a, b in zip(trials["10% fail once"], trials["no failures"], strict=True)
    ]
    note = (
        f"{rounds} x {count:,} events, {PARTITIONS} partitions, retry tier {DELAY}, jitter {JITTER}, kep run"
    )
    ordered = sorted(lateness)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else float("nan")

    results = rates(ctx, trials, note)
    results += cpu_per_event(ctx, runs)
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
