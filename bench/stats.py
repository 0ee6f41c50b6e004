"""Small statistics for benchmarks: medians, rates and interleaved trials."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """``count`` operations in ``seconds`` of wall time and ``cpu_seconds`` of this process (all threads)."""

    count: int
    seconds: float
    cpu_seconds: float = float("nan")

    @property
    def per_second(self) -> float:
        return rate(self.count, self.seconds)

    @property
    def micros_each(self) -> float:
        return self.seconds / self.count * 1e6 if self.count else float("nan")

    @property
    def cpu_micros_each(self) -> float:
        """CPU time of this process per operation: less sensitive than wall time to other load on the host."""
        return self.cpu_seconds / self.count * 1e6 if self.count else float("nan")


def rate(count: int, seconds: float) -> float:
    """Operations per second (``inf`` for a zero duration)."""
    return count / seconds if seconds > 0 else float("inf")


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def timed(count: int, body: Callable[[], object]) -> Timing:
    """Run ``body`` once (it does ``count`` operations) after a full garbage collection, and time it."""
    gc.collect()
    start, cpu_start = time.perf_counter(), time.process_time()
    body()
    return Timing(count, time.perf_counter() - start, time.process_time() - cpu_start)


def interleaved(variants: Mapping[str, Callable[[], Timing]], repeats: int) -> dict[str, list[Timing]]:
    """Run every variant once per round, ``repeats`` rounds, rotating the order each round.

    Interleaving spreads drift (a warming broker, a neighbour's load) over all variants instead of biasing
    whichever ran last.
    """
    names = list(variants)
    results: dict[str, list[Timing]] = {name: [] for name in names}
    for round_no in range(repeats):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(variants[name]())
    return results


def median_rate(timings: Sequence[Timing]) -> float:
    return median([t.per_second for t in timings])


def median_micros(timings: Sequence[Timing]) -> float:
    return median([t.micros_each for t in timings])


def median_cpu_micros(timings: Sequence[Timing]) -> float:
    return median([t.cpu_micros_each for t in timings])
