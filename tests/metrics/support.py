"""Helpers for the metrics tests: a worker state source, a probe answer, one-shot scrapes."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from kep.consumers.metrics import PartitionState, WorkerMetrics

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class StaticSource:
    """A WorkerStateSource whose answers the test sets."""

    states: list[PartitionState] = field(default_factory=list)
    in_flight_count: int = 0

    def partition_states(self) -> Sequence[PartitionState]:
        return list(self.states)

    def in_flight(self) -> int:
        return self.in_flight_count


@dataclass(frozen=True)
class Answer:
    log_end: int
    next_timestamp_ms: int | None


@dataclass(frozen=True)
class ProbedAt(Answer):
    """An answer that says where the probe read from (the log start when asked for no commit)."""

    position: int | None = None


class RecordingProbe:
    """Answers from a table and records every call; ``gate`` (when set) holds each call until it is set."""

    def __init__(self, answers: Mapping[tuple[str, int], Answer] | None = None) -> None:
        self.answers = dict(answers or {})
        self.calls: list[dict[tuple[str, int], int]] = []
        self.gate: threading.Event | None = None
        self.error: Exception | None = None

    def __call__(self, positions: Mapping[tuple[str, int], int]) -> dict[tuple[str, int], Answer]:
        self.calls.append(dict(positions))
        if self.gate is not None:
            self.gate.wait(30)
        if self.error is not None:
            raise self.error
        return {key: self.answers[key] for key in positions if key in self.answers}


def scrape(registry: CollectorRegistry) -> Samples:
    """One collection of the registry as ``{(sample name, sorted labels): value}``."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for metric in registry.collect()
        for s in metric.samples
    }


def sample(samples: Samples, name: str, **labels: str | int) -> float | None:
    return samples.get((name, tuple(sorted((k, str(v)) for k, v in labels.items()))))


def make_every_hot_path_call(metrics: WorkerMetrics, topic: str = "orders") -> None:
    """One call of each per-message, per-commit and per-rebalance method: every such series gets a sample."""
    metrics.handled(topic, 0.01)
    metrics.failed(topic, "ValueError", 0.02)
    metrics.retried(topic, "10s")
    metrics.dead_lettered(topic)
    metrics.skipped_duplicate(topic)
    metrics.commit(0.003, ok=False)
    metrics.rebalance("assign")
