"""Batched offset commits: asynchronous in steady state, synchronous on revoke and shutdown."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from kep.consumers.runtime.partition import PartitionState

log = structlog.get_logger(__name__)


class Committer:
    def __init__(
        self,
        consumer: Consumer,
        *,
        every: int,
        interval_s: float,
        on_result: Callable[[float, bool], None],
        lookup: Callable[[str, int], PartitionState | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._consumer = consumer
        self._every = every
        self._interval = interval_s
        self._on_result = on_result
        self._lookup = lookup
        self._clock = clock
        self._last = clock()
        self._sent_at: float | None = None

    def maybe_commit(self, states: Iterable[PartitionState]) -> None:
        """Commit when the interval passed or enough messages finished since the last commit."""
        now = self._clock()
        if now - self._last < self._interval and not self._due_by_count(states):
            return
        self._last = now
        self.commit(states, asynchronous=True)

    def _due_by_count(self, states: Iterable[PartitionState]) -> bool:
        total = 0
        for s in states:
            offset = s.tracker.committable()
            if offset is not None:
                total += offset - (s.tracker.committed or offset)
        return total >= self._every

    def commit(self, states: Iterable[PartitionState], *, asynchronous: bool) -> list[TopicPartition]:
        """Commit every partition's contiguous finished prefix. Returns what was committed (or sent)."""
        todo = [(s, s.tracker.committable()) for s in states]
        offsets = [TopicPartition(s.topic, s.partition, o) for s, o in todo if o is not None]
        if not offsets:
            return []
        started = time.perf_counter()
        try:
            if asynchronous:
                self._sent_at = started
                self._consumer.commit(offsets=offsets, asynchronous=True)
            else:
                self._consumer.commit(offsets=offsets, asynchronous=False)
                self._on_result(time.perf_counter() - started, True)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            self._on_result(time.perf_counter() - started, False)
            log.warning("commit failed", error=error.str(), code=error.name())
            return []
        for s, o in todo:
            if o is not None:
                s.tracker.mark_committed(o)
        return offsets

    def on_commit(self, err: Any, partitions: list[TopicPartition]) -> None:
        """librdkafka's commit callback (asynchronous commits). A failed commit is sent again next time."""
        started, self._sent_at = self._sent_at, None
        duration = time.perf_counter() - started if started is not None else 0.0
        failed = [tp for tp in partitions if tp.error is not None] if err is None else list(partitions)
        if failed:
            log.warning("commit failed", error=str(err or failed[0].error))
            for tp in failed:
                state = self._lookup(tp.topic, tp.partition)
                if state is not None:
                    state.tracker.forget_committed()
        self._on_result(duration, not failed)
