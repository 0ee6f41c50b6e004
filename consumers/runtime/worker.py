"""The worker: one consumer-group member running an ``App``.

The poll thread owns the Kafka consumer, the retry tiers' reader (``tier_reader.py``) and the forwarding
producer's callbacks. It fetches batches, hands each message to its partition's lane (or, in key-ordered mode,
to the lane of its key), holds retry records that are not due yet and hands each to its lane at its due time,
serves the producer's delivery callbacks, and commits the contiguous finished prefix of every partition in
batches. At the in-flight bound it stops fetching and
waits for the lanes, which wake it as they finish work (``room.py``); it pauses the busy partitions only when
no room came for ``PAUSE_AFTER_S``. Lanes run on a thread pool; they process messages into outcomes and
settle them (``settle.py``).
Revoke and shutdown commit synchronously what is finished; a lost partition's work is dropped uncommitted.
See docs/architecture.md, "Threads", for who owns what.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from kep.consumers.errors import AppError, exception_name
from kep.consumers.metrics import Health, WorkerMetrics
from kep.consumers.metrics import PartitionState as PartitionSnapshot
from kep.consumers.runtime.cancel import CancelToken
from kep.consumers.runtime.committer import Committer
from kep.consumers.runtime.held import HeldRetries
from kep.consumers.runtime.lanes import Lane
from kep.consumers.runtime.partition import BACKPRESSURE, HOLDING, STOPPING, PartitionState, WorkItem
from kep.consumers.runtime.plan import WorkerPlan
from kep.consumers.runtime.processor import Processor
from kep.consumers.runtime.room import Room
from kep.consumers.runtime.settle import Settler
from kep.consumers.runtime.tier_reader import TierReader

log = structlog.get_logger(__name__)

CONSUME_BATCH = 500
MERGED_BATCH = 1000
TIER_READ_EVERY_S = 0.01
PAUSE_AFTER_S = 1.0
"""At the in-flight bound, how long the poll thread waits for room before it pauses the busy partitions (so that
it can serve the consumer's callbacks without being handed more records)."""


class Worker:
    """Runs until ``stop()`` (thread-safe; ``kep run`` calls it on SIGTERM/SIGINT), then drains and leaves."""

    def __init__(
        self,
        plan: WorkerPlan,
        processor: Processor,
        *,
        metrics: WorkerMetrics,
        health: Health,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.plan = plan
        self._clock_ms = clock_ms  # wall clock of due times (epoch ms); injected by tests
        self.settings = plan.settings
        self.processor = processor
        self.settler: Settler = processor.settler
        self.metrics = metrics
        self.health = health
        self._states: dict[tuple[str, int], PartitionState] = {}
        self._stop = CancelToken()
        self._pool = ThreadPoolExecutor(max_workers=self._pool_size(), thread_name_prefix="kep-lane")
        config = plan.consumer_config()
        self._consumer = Consumer({**config, "error_cb": self._on_error, "on_commit": self._on_commit})
        self._tiers: TierReader | None = None  # the retry tiers' own fetch path (tier_reader.py)
        self._tiers_read_at = 0.0
        if plan.tiers:
            self._tiers = TierReader(
                {**config, "error_cb": self._on_error},
                plan.tiers,
                auto_offset_reset=self.settings.auto_offset_reset,
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
        self._batch = min(CONSUME_BATCH, self.settings.max_in_flight)
        self._least = max(1, min(self._batch, self.settings.max_in_flight // 4))  # smallest fetch worth it
        self._room = Room()  # lanes wake the poll thread through it when it waits at the bound
        self._full_since: float | None = None  # when the in-flight bound was reached (None: there is room)
        self._pause_after_s = PAUSE_AFTER_S
        self._closers: list[Callable[[], object]] = [processor.close, plan.close]
        self._hooks_started = False  # the app's startup hooks all ran: its shutdown hooks run at close

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
        self._stop.cancel()

    @property
    def stopping(self) -> bool:
        return self._stop.cancelled

    def run(self) -> None:
        topics = list(self.plan.subscriptions)
        log.info(
            "worker starting", group=self.plan.group, topics=topics, concurrency=self.settings.concurrency
        )
        try:
            self._start_hooks()
        except BaseException:
            self._close()
            raise
        self._consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        # Lanes are CPU-bound between I/O waits; longer slices mean fewer GIL hand-offs between them.
        previous_interval = sys.getswitchinterval()
        sys.setswitchinterval(self.settings.switch_interval_ms / 1000.0)
        try:
            while not self._stop.cancelled:
                self._poll_once()
            self._drain()
        finally:
            sys.setswitchinterval(previous_interval)
            self._close()

    def _start_hooks(self) -> None:
        """The app's startup hooks, before the worker joins the group; ``AppError`` names one that fails."""
        for hook in self.processor.app.startup:
            try:
                self.processor.call_hook(hook)
            except Exception as exc:
                raise AppError(f"startup hook {hook.name} failed: {exception_name(exc)}: {exc}") from exc
        self._hooks_started = True

    def _stop_hooks(self) -> None:
        """The app's shutdown hooks, once the startup hooks all ran; each failure is logged, the rest still run."""
        if not self._hooks_started:
            return
        self._hooks_started = False
        for hook in self.processor.app.shutdown:
            try:
                self.processor.call_hook(hook)
            except Exception as exc:  # noqa: BLE001 - the other hooks and the closing go on
                log.error("shutdown hook failed", hook=hook.name, error=f"{exception_name(exc)}: {exc}")

    def _poll_once(self) -> None:
        msgs = self._fetch()
        self.health.beat()
        self.settler.poll()
        tiers = self._tiers
        if msgs:
            self._dispatch(msgs, from_group=tiers is not None)
        if tiers is not None:
            now = time.monotonic()
            if now - self._tiers_read_at >= TIER_READ_EVERY_S:  # each read gives up the GIL
                self._tiers_read_at = now
                tiers.start_pending(self._consumer)
                tier_msgs = tiers.consume(self._tier_room())
                if tier_msgs:
                    self._dispatch(tier_msgs)
        if self._states:
            self._release_due()
            self._backpressure()
            self._committer.maybe_commit(self._states.values())
            self._refresh_watermarks()
        self._check_rebalance_timeout()

    def _fetch(self) -> list[Message]:
        """The next records, as soon as there are any: what librdkafka already holds at once (up to a batch and
        the room left under the in-flight bound), else a wait of up to the consume timeout for the first one.
        At the bound, no fetch: a wait for the lanes to make room (they wake this thread)."""
        timeout = self._consume_timeout()
        room = self.settings.max_in_flight - self._running()
        if room < self._least:
            if self._full_since is None:
                self._full_since = time.monotonic()
            self._room.wait(timeout, lambda: self.settings.max_in_flight - self._running() < self._least)
            if not self._paused_for_room():
                return []
            room, timeout = 1, 0.0  # paused partitions give nothing: this serves the consumer's callbacks
        else:
            self._full_since = None
        batch = min(self._batch, room)
        consume = self._consumer.consume
        msgs = consume(num_messages=batch, timeout=0)
        if msgs or timeout <= 0:
            return msgs
        msgs = consume(num_messages=1, timeout=timeout)  # returns with the first record
        if msgs and batch > 1:
            msgs += consume(num_messages=batch - 1, timeout=0)
        return msgs

    def _running(self) -> int:
        """Messages in flight on partitions no limit may hold: what the in-flight bound and ``_fetch`` watch."""
        return self._totals()[0]

    def _totals(self) -> list[int]:
        """Messages in flight: ``[0]`` on partitions no limit may hold, ``[1]`` on those a rate or concurrency
        limit may hold (``consumers/limits``). Each has its own budget of ``max_in_flight``, so a held backlog
        never stops the other topics; limited partitions are paused as soon as theirs is spent."""
        totals = [0, 0]
        for state in self._states.values():
            totals[state.limited] += state.running
        return totals

    def _tier_room(self) -> int:
        """How many retry records to take: the tiers have a budget of ``max_in_flight`` of their own, so that a
        main-topic backlog never keeps a due retry waiting (records held until due are bounded by pausing)."""
        running = sum(s.running for s in self._states.values() if s.tier is not None)
        return min(CONSUME_BATCH, self.settings.max_in_flight - running)

    def _paused_for_room(self) -> bool:
        return any(BACKPRESSURE in s.pause_reasons for s in self._states.values())

    def _run_item(self, item: WorkItem) -> None:
        """A lane's work: process a batch, then wake the poll thread if it waits for room."""
        try:
            self.processor(item)
        finally:
            self._room.made()

    def _consume_timeout(self) -> float:
        """The usual consume timeout, shortened so held retries are handed on at their release time."""
        soonest = None
        for state in self._states.values():
            held = state.held
            if held is not None and held.next_release_ms is not None:
                due = held.next_release_ms
                soonest = due if soonest is None or due < soonest else soonest
        usual = self.settings.consume_timeout_s
        if soonest is None:
            return usual
        return min(usual, max(0.0, (soonest - self._clock_ms()) / 1000.0))

    # -- dispatch -------------------------------------------------------------------------------------------------
    def _dispatch(self, msgs: list[Message], *, from_group: bool = False) -> None:
        """Hand ``msgs`` to their lanes (records not due yet are held). ``from_group``: fetched by the group
        consumer while a tier reader reads the retry tiers; its tier records (fetched before its pause took
        effect) are skipped, the tier reader delivers them."""
        runs: dict[Lane[WorkItem], WorkItem] = {}
        added: dict[PartitionState, list[int]] = {}
        now_ms = self._clock_ms()
        states = self._states
        for msg in msgs:
            err = msg.error()
            if err is not None:
                self._on_message_error(err)
                continue
            state = states.get((msg.topic(), msg.partition()))  # type: ignore[arg-type]
            if state is None or STOPPING in state.pause_reasons or (from_group and state.tier is not None):
                continue  # revoked, or fetched before the pause took effect: it will be fetched again
            offset: int = msg.offset()  # type: ignore[assignment]
            offsets = added.get(state)
            if offsets is None:
                offsets = added[state] = []
            offsets.append(offset)
            held = state.held
            if held is not None:
                due = held.due_ms(msg.headers(), msg.timestamp()[1], now_ms)
                if due > now_ms:
                    held.hold(due, msg)
                    continue
            lane = state.lane_for(msg.key(), offset)
            run = runs.get(lane)
            if run is None:
                runs[lane] = (state, [msg])
            else:
                run[1].append(msg)
        for state, offsets in added.items():
            state.tracker.extend(offsets)
        self.health.connected(True)
        for lane, run in runs.items():
            lane.submit((run,))

    def _release_due(self) -> None:
        """Hand the held retry records that are due to their lanes, soonest due first (a partition's together,
        once the soonest has waited its gathering time: ``held.py``)."""
        now_ms: int | None = None
        for state in self._states.values():
            held = state.held
            if held is None or held.next_release_ms is None:
                continue
            if now_ms is None:
                now_ms = self._clock_ms()
            due = held.release(now_ms)
            if not due:
                continue
            runs: dict[Lane[WorkItem], WorkItem] = {}
            for msg in due:
                lane = state.lane_for(msg.key(), msg.offset())
                run = runs.get(lane)
                if run is None:
                    runs[lane] = (state, [msg])
                else:
                    run[1].append(msg)
            for lane, run in runs.items():
                lane.submit((run,))

    def _backpressure(self) -> None:
        limit = self.settings.max_in_flight
        totals = self._totals()
        full_since = self._full_since
        stalled = full_since is not None and time.monotonic() - full_since >= self._pause_after_s
        for state in self._states.values():
            running = state.running
            total = totals[state.limited]
            if BACKPRESSURE in state.pause_reasons:
                if total <= limit // 2 and running <= limit // 2:
                    self._unpause(state, BACKPRESSURE)
            elif (
                (stalled or state.limited)
                and running > 0
                and (total > limit - self._least or running >= limit)
            ):
                self._pause(state, BACKPRESSURE)
            held = state.held
            if held is not None:
                if HOLDING in state.pause_reasons:
                    if len(held) <= limit // 2:
                        self._unpause(state, HOLDING)
                elif len(held) >= limit:
                    self._pause(state, HOLDING)

    def _reader(self, state: PartitionState) -> Consumer | TierReader:
        """The client that fetches ``state``'s partition."""
        return self._tiers if self._tiers is not None and state.tier is not None else self._consumer

    def _pause(self, state: PartitionState, reason: str) -> None:
        if not state.pause_reasons:
            self._reader(state).pause([TopicPartition(state.topic, state.partition)])
        state.pause_reasons.add(reason)

    def _unpause(self, state: PartitionState, reason: str) -> None:
        if reason in state.pause_reasons:
            state.pause_reasons.discard(reason)
            if not state.pause_reasons:
                self._reader(state).resume([TopicPartition(state.topic, state.partition)])

    # -- rebalances -------------------------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._states[(tp.topic, tp.partition)] = self._new_state(tp.topic, tp.partition)
        if self._tiers is not None:
            self._tiers.adopt(partitions)
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
        token = CancelToken()
        lanes: list[Lane[WorkItem]] = [
            Lane(self._pool, self._run_item, token, merge_items) for _ in range(lanes_n)
        ]
        held = None
        if tier is not None:
            held = HeldRetries(*self.plan.holds.get(topic, (0, 0)))
        limits = getattr(self.processor, "limits", None)  # consumers/limits
        limited = limits is not None and limits.may_limit(source)
        return PartitionState(topic, partition, source, tier, lanes, token=token, held=held, limited=limited)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._rebalancing_since = time.monotonic()
        self.health.rebalancing(True)
        self.metrics.rebalance("revoke")
        states = [
            s for tp in partitions if (s := self._states.pop((tp.topic, tp.partition), None)) is not None
        ]
        self._finish(states, timeout=self.settings.revoke_timeout_s)
        self._clear_pauses(states)
        if self._tiers is not None:
            self._tiers.drop(partitions)
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
        if self._tiers is not None:
            self._tiers.drop(partitions)
        self.health.assigned(len(self._states))
        log.warning("partitions lost; their work is dropped uncommitted", partitions=_names(partitions))

    def _clear_pauses(self, states: Sequence[PartitionState]) -> None:
        """librdkafka remembers a pause across revoke and re-assign: a partition we get back must flow."""
        for state in states:
            if state.pause_reasons:
                self._reader(state).resume([TopicPartition(state.topic, state.partition)])

    def _finish(self, states: Sequence[PartitionState], *, timeout: float) -> None:
        """Stop taking work from ``states``, let running handlers finish within ``timeout``, commit what is done."""
        for state in states:
            state.cancel()
        deadline = time.monotonic() + timeout
        for state in states:
            state.wait_idle(max(0.0, deadline - time.monotonic()))
        self.settler.flush(max(0.5, deadline - time.monotonic()))
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
        for state in states:  # not due yet: left uncommitted for the next run, not waited for
            if state.held is not None:
                state.held.clear()
        while time.monotonic() < deadline and any(s.running > 0 for s in states):
            self._consumer.consume(
                num_messages=CONSUME_BATCH, timeout=self.settings.consume_timeout_s
            )  # callbacks, heartbeats
            self.settler.poll()
        self._finish(states, timeout=max(0.0, deadline - time.monotonic()))

    def _close(self) -> None:
        try:
            self._consumer.close()  # leaves the group; the revoke callback commits what is left
        finally:
            if self._tiers is not None:
                self._tiers.close()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._stop_hooks()
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
                low, high = self._reader(state).get_watermark_offsets(
                    TopicPartition(state.topic, state.partition), cached=True
                )
            except Exception:  # noqa: BLE001 - nothing fetched yet
                continue
            state.log_start = low if low >= 0 else None
            state.log_end = high if high >= 0 else None

    def in_flight(self) -> int:
        return sum(s.tracker.in_flight for s in list(self._states.values()))


def merge_items(queued: WorkItem, new: WorkItem) -> bool:
    """Fold ``new`` into ``queued`` (a lane's last queued item, not started): one lane batch, in order, so its
    idempotency keys are claimed and completed together. Batches stay at most ``MERGED_BATCH`` messages."""
    if queued[0] is not new[0] or len(queued[1]) + len(new[1]) > MERGED_BATCH:
        return False
    queued[1].extend(new[1])
    return True


def _names(partitions: list[TopicPartition]) -> list[str]:
    return [f"{tp.topic}[{tp.partition}]" for tp in partitions]
