"""The worker: one consumer-group member running an ``App``.

The poll thread owns the Kafka consumer. It fetches batches, hands each message to its partition's lane (or, in
key-ordered mode, to the lane of its key), pauses partitions whose retry is not due yet or whose in-flight work
hit the bound, and commits the contiguous finished prefix of every partition in batches. Lanes run on a thread
pool; they mark offsets finished. Revoke and shutdown commit synchronously what is finished; a lost partition's
work is dropped without committing.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from kep.consumers.metrics import Health, WorkerMetrics
from kep.consumers.metrics import PartitionState as PartitionSnapshot
from kep.consumers.runtime.committer import Committer
from kep.consumers.runtime.lanes import Lane
from kep.consumers.runtime.partition import BACKPRESSURE, DELAY, STOPPING, PartitionState, WorkItem
from kep.consumers.runtime.plan import WorkerPlan
from kep.consumers.runtime.processor import Processor
from kep.producers import headers as h

log = structlog.get_logger(__name__)

CONSUME_BATCH = 500
CONSUME_TIMEOUT_S = 0.1
RETRY_RESUME_GRACE_S = 0.2


class Worker:
    """Runs until ``stop()`` (thread-safe; ``kep run`` calls it on SIGTERM/SIGINT), then drains and leaves."""

    def __init__(
        self, plan: WorkerPlan, processor: Processor, *, metrics: WorkerMetrics, health: Health
    ) -> None:
        self.plan = plan
        self.settings = plan.settings
        self.processor = processor
        self.metrics = metrics
        self.health = health
        self._states: dict[tuple[str, int], PartitionState] = {}
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=self._pool_size(), thread_name_prefix="kep-lane")
        self._consumer = Consumer(
            {**plan.consumer_config(), "error_cb": self._on_error, "on_commit": self._on_commit}
        )
        self._committer = Committer(
            self._consumer,
            every=self.settings.commit_every,
            interval_s=self.settings.commit_interval_s,
            on_result=metrics.commit,
            lookup=lambda topic, partition: self._states.get((topic, partition)),
        )
        self._rebalancing_since: float | None = None
        self._watermarks_at = 0.0
        self._batch = min(
            CONSUME_BATCH, self.settings.max_in_flight
        )  # a batch never overshoots the bound much
        self._closers: list[Callable[[], object]] = [processor.close, plan.close]

    def on_close(self, fn: Callable[[], object]) -> None:
        """Call ``fn`` when the worker has stopped (after the consumer left the group)."""
        self._closers.append(fn)

    def _pool_size(self) -> int:
        # threads start on demand; a lane waiting on I/O holds one, so allow many
        return max(64, self.settings.workers * 8)

    def _on_commit(self, err: Any, partitions: list[TopicPartition]) -> None:
        self._committer.on_commit(err, partitions)

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        topics = list(self.plan.subscriptions)
        log.info(
            "worker starting", group=self.plan.group, topics=topics, concurrency=self.settings.concurrency
        )
        self._consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        # Lanes are CPU-bound between I/O waits; longer slices mean fewer GIL hand-offs between them.
        previous_interval = sys.getswitchinterval()
        sys.setswitchinterval(self.settings.switch_interval_ms / 1000.0)
        try:
            while not self._stop.is_set():
                self._poll_once()
            self._drain()
        finally:
            sys.setswitchinterval(previous_interval)
            self._close()

    def _poll_once(self) -> None:
        msgs = self._consumer.consume(num_messages=self._batch, timeout=CONSUME_TIMEOUT_S)
        self.health.beat()
        self.plan.poll_producer()
        if msgs:
            self._dispatch(msgs)
        if self._states:
            self._resume_due()
            self._backpressure()
            self._committer.maybe_commit(self._states.values())
            self._refresh_watermarks()
        self._check_rebalance_timeout()

    # -- dispatch -------------------------------------------------------------------------------------------------
    def _dispatch(self, msgs: list[Message]) -> None:
        runs: dict[Lane[WorkItem], WorkItem] = {}
        delayed: set[PartitionState] = set()
        now_ms = int(time.time() * 1000)
        states = self._states
        for msg in msgs:
            err = msg.error()
            if err is not None:
                self._on_message_error(err)
                continue
            state = states.get((msg.topic(), msg.partition()))  # type: ignore[arg-type]
            if (
                state is None
                or state in delayed
                or DELAY in state.pause_reasons
                or STOPPING in state.pause_reasons
            ):
                continue  # revoked, or fetched before the pause took effect: it will be fetched again
            offset: int = msg.offset()  # type: ignore[assignment]
            if state.tier is not None:
                due = h.header_int(msg.headers(), h.DUE_TIME)
                if due is not None and due > now_ms:
                    self._delay(state, offset, due, now_ms)
                    delayed.add(state)
                    continue
            state.tracker.add(offset)
            lane = state.lane_for(msg.key(), offset)
            run = runs.get(lane)
            if run is None:
                runs[lane] = (state, [msg])
            else:
                run[1].append(msg)
        self.health.connected(True)
        for lane, run in runs.items():
            lane.submit((run,))

    def _delay(self, state: PartitionState, offset: int, due_ms: int, now_ms: int) -> None:
        """A retry that is not due yet: pause its partition, rewind to it, resume after the due time.

        The resume waits ``RETRY_RESUME_GRACE_S`` past the due time, so the records failed just after this one
        are due too and run in the same fetch: without it, a busy retry topic pauses and seeks again every few
        records. A retry never runs early; it may run up to the grace late.
        """
        self._pause(state, DELAY)
        self._consumer.seek(TopicPartition(state.topic, state.partition, offset))
        state.resume_at = time.monotonic() + (due_ms - now_ms) / 1000.0 + RETRY_RESUME_GRACE_S

    def _resume_due(self) -> None:
        now = time.monotonic()
        for state in self._states.values():
            if state.resume_at is not None and state.resume_at <= now:
                state.resume_at = None
                self._unpause(state, DELAY)

    def _backpressure(self) -> None:
        limit = self.settings.max_in_flight
        total = 0
        for state in self._states.values():
            total += state.tracker.in_flight
        for state in self._states.values():
            in_flight = state.tracker.in_flight
            if BACKPRESSURE in state.pause_reasons:
                if total <= limit // 2 and in_flight <= limit // 2:
                    self._unpause(state, BACKPRESSURE)
            elif in_flight > 0 and (total >= limit or in_flight >= limit):
                self._pause(state, BACKPRESSURE)

    def _pause(self, state: PartitionState, reason: str) -> None:
        if not state.pause_reasons:
            self._consumer.pause([TopicPartition(state.topic, state.partition)])
        state.pause_reasons.add(reason)

    def _unpause(self, state: PartitionState, reason: str) -> None:
        if reason in state.pause_reasons:
            state.pause_reasons.discard(reason)
            if not state.pause_reasons:
                self._consumer.resume([TopicPartition(state.topic, state.partition)])

    # -- rebalances -------------------------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._states[(tp.topic, tp.partition)] = self._new_state(tp.topic, tp.partition)
        self._rebalancing_since = None
        self.metrics.rebalance("assign")
        self.health.connected(True)
        self.health.rebalancing(False)
        self.health.assigned(len(self._states))
        self.health.idle_by_design(not self._states)
        log.info("partitions assigned", group=self.plan.group, partitions=_names(partitions))

    def _new_state(self, topic: str, partition: int) -> PartitionState:
        source, tier = self.plan.source_of(topic)
        lanes_n = self.settings.workers if self.settings.concurrency == "key" else 1
        lanes: list[Lane[WorkItem]] = [Lane(self._pool, self.processor) for _ in range(lanes_n)]
        return PartitionState(topic, partition, source, tier, lanes)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._rebalancing_since = time.monotonic()
        self.health.rebalancing(True)
        self.metrics.rebalance("revoke")
        states = [
            s for tp in partitions if (s := self._states.pop((tp.topic, tp.partition), None)) is not None
        ]
        self._finish(states, timeout=self.settings.revoke_timeout_s)
        self._clear_pauses(states)
        self.health.assigned(len(self._states))
        log.info("partitions revoked", group=self.plan.group, partitions=_names(partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalance("lost")
        states = [
            s for tp in partitions if (s := self._states.pop((tp.topic, tp.partition), None)) is not None
        ]
        for state in states:
            state.cancel()
        self._clear_pauses(states)
        self.health.assigned(len(self._states))
        log.warning("partitions lost; their work is dropped uncommitted", partitions=_names(partitions))

    def _clear_pauses(self, states: Sequence[PartitionState]) -> None:
        """librdkafka remembers a pause across revoke and re-assign: a partition we get back must flow."""
        paused = [TopicPartition(s.topic, s.partition) for s in states if s.pause_reasons]
        if paused:
            self._consumer.resume(paused)

    def _finish(self, states: Sequence[PartitionState], *, timeout: float) -> None:
        """Stop taking work from ``states``, let running handlers finish within ``timeout``, commit what is done."""
        for state in states:
            state.cancel()
        deadline = time.monotonic() + timeout
        for state in states:
            state.wait_idle(max(0.0, deadline - time.monotonic()))
        self.plan.flush_producer(max(0.5, deadline - time.monotonic()))
        self._committer.commit(states, asynchronous=False)

    def _check_rebalance_timeout(self) -> None:
        # A cooperative revoke need not be followed by an assign callback: once the group is quiet, we are done.
        since = self._rebalancing_since
        if since is not None and time.monotonic() - since > self.settings.session_timeout_ms / 1000.0:
            self._rebalancing_since = None
            self.health.rebalancing(False)

    # -- errors -----------------------------------------------------------------------------------------------
    def _on_error(self, err: KafkaError) -> None:
        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            self.health.connected(False)
        log.warning("kafka client error", error=err.str(), code=err.name())

    def _on_message_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._PARTITION_EOF:
            return
        log.warning("consume error", error=err.str(), code=err.name())

    # -- shutdown -----------------------------------------------------------------------------------------------
    def _drain(self) -> None:
        """Stop fetching, finish what was fetched within the drain deadline, commit, leave the group."""
        self.health.stopping()
        states = list(self._states.values())
        for state in states:
            self._pause(state, STOPPING)
        deadline = time.monotonic() + self.settings.drain_timeout_s
        log.info(
            "draining",
            group=self.plan.group,
            in_flight=self.in_flight(),
            deadline_s=self.settings.drain_timeout_s,
        )
        while time.monotonic() < deadline and any(s.tracker.in_flight for s in states):
            self._consumer.consume(
                num_messages=CONSUME_BATCH, timeout=CONSUME_TIMEOUT_S
            )  # callbacks, heartbeats
            self.plan.poll_producer()
        self._finish(states, timeout=max(0.0, deadline - time.monotonic()))

    def _close(self) -> None:
        try:
            self._consumer.close()  # leaves the group; the revoke callback commits what is left
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)
            for close in self._closers:
                try:
                    close()
                except Exception:  # noqa: BLE001 - keep closing the rest
                    log.exception("error while closing")
            log.info("worker stopped", group=self.plan.group)

    # -- scrape-time state (WorkerStateSource) --------------------------------------------------------------------
    def partition_states(self) -> list[PartitionSnapshot]:
        snapshots = []
        for state in list(self._states.values()):
            snapshots.append(
                PartitionSnapshot(
                    topic=state.topic,
                    partition=state.partition,
                    committed=state.tracker.committed,
                    processed=state.tracker.processed,
                    log_end=state.log_end,
                    paused=bool(state.pause_reasons),
                    log_start=state.log_start,
                )
            )
        return snapshots

    def _refresh_watermarks(self) -> None:
        """Copy the watermarks of the last fetch responses into the partition states, once a second.

        Done in the poll thread: the consumer's calls block while another thread is inside ``consume()``, so
        the scrape thread only ever reads these copies.
        """
        now = time.monotonic()
        if now - self._watermarks_at < 1.0:
            return
        self._watermarks_at = now
        for state in self._states.values():
            try:
                low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(state.topic, state.partition), cached=True
                )
            except Exception:  # noqa: BLE001 - nothing fetched yet
                continue
            state.log_start = low if low >= 0 else None
            state.log_end = high if high >= 0 else None

    def in_flight(self) -> int:
        return sum(s.tracker.in_flight for s in list(self._states.values()))


def _names(partitions: list[TopicPartition]) -> list[str]:
    return [f"{tp.topic}[{tp.partition}]" for tp in partitions]
