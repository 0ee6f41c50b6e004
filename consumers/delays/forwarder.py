"""``DelayForwarder``: moves delayed records through the delay tiers and onto their destination when due.

One thread (the caller of ``run``) owns the consumer, the producer, the schedule and the partition states, and
serves the producer's delivery callbacks. Every record read from a tier is added to its partition's
``OffsetTracker`` and waits in one schedule (a heap by wake-up time) until it leaves its tier or, held, until
it is due (``decide.py``). An offset is finished only when what the record became (a record in a smaller tier,
on its destination, or a dead letter) was acknowledged (acks=all, idempotent producer); commits take the
contiguous finished prefix. A partition is paused while it has ``read_ahead`` records waiting or in flight, and
resumed when half of them left: memory is bounded whatever the number of pending delayed records. The poll
loop never sleeps: it waits in ``consume`` at most until the next wake-up.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from prometheus_client import CollectorRegistry

from kep.consumers.delays.decide import (
    Deliver,
    Hold,
    Reject,
    Retier,
    Scheduled,
    forward_headers,
    leave_ms,
    next_step,
    schedule,
)
from kep.consumers.delays.metrics import DelayMetrics
from kep.consumers.errors import ConfigError
from kep.consumers.runtime.offsets import OffsetTracker
from kep.producers import ProducerSettings
from kep.producers import headers as h
from kep.topology import DelaySpec, KafkaSettings, Topology

__all__ = ["DelayForwarder"]

log = structlog.get_logger("kep.delays")

_MAX_WAIT_S = 0.1
_RETRY_SEND_MS = 1000
_COMMIT_EVERY_S = 0.5
_LOGS_PER_MINUTE = 20


@dataclass
class _Partition:
    generation: int
    tier: str
    tier_s: float
    tracker: OffsetTracker = field(default_factory=OffsetTracker)
    next_offset: int = -1  # the next offset expected from the consumer (-1: none seen yet)
    base: int = -1  # the first offset seen since assignment
    outstanding: int = 0  # read and not finished
    paused: bool = False


@dataclass(slots=True)
class _Entry:
    """A tier record in the schedule: ``step`` None means "leaves its tier at wake-up"; else a send to do."""

    tp: tuple[str, int]
    generation: int
    msg: Message
    scheduled: Scheduled | None
    step: Deliver | Retier | Reject | None = None


class DelayForwarder:
    """Reads the delay tiers of ``topology.delays`` in its group and forwards each record when due.

    ``group_config``: extra librdkafka consumer keys (session timeout, heartbeat, assignment strategy).
    ``clock``: milliseconds since the epoch (a test clock in unit tests). ``beat``: called each turn of the loop
    (``Health.beat``, so ``/healthz`` says whether the loop still turns).
    """

    def __init__(
        self,
        topology: Topology,
        kafka: KafkaSettings,
        *,
        registry: CollectorRegistry | None = None,
        group_config: dict[str, Any] | None = None,
        read_ahead: int = 2000,
        fetch_wait_max_ms: int = 50,
        clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        beat: Callable[[], None] | None = None,
    ) -> None:
        if topology.delays is None:
            raise ConfigError("the topology has no delays: section, so there are no delay tiers to forward")
        self.delays: DelaySpec = topology.delays
        self._beat = beat or (lambda: None)  # each turn of the loop (``Health.beat`` for /healthz)
        self._destinations = frozenset(t.name for t in topology.topics)
        self._tiers = {t.topic: t.delay_seconds for t in self.delays.tier_list()}
        self._kafka = kafka
        self._clock = clock
        self._read_ahead = read_ahead
        self._conf = {
            **kafka.as_librdkafka_dict(),
            "group.id": self.delays.group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": fetch_wait_max_ms,
            "queued.max.messages.kbytes": 4096,
            "allow.auto.create.topics": False,
            **(group_config or {}),
        }
        self._parts: dict[tuple[str, int], _Partition] = {}
        self._schedule: list[tuple[int, int, _Entry]] = []
        self._seq = itertools.count()
        self._generations = itertools.count(1)
        self._stop = threading.Event()
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._last_commit = 0.0
        self._pending_snapshot: dict[str, int] = {}
        self._logged: dict[str, list[float]] = {}
        self.metrics = DelayMetrics(registry or CollectorRegistry(), lambda: dict(self._pending_snapshot))

    # -- lifecycle ------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask ``run`` to finish: it flushes, commits what was acknowledged and leaves the group."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def assigned(self) -> int:
        """How many tier partitions this forwarder owns now (0 until its group assigned it some)."""
        return len(self._parts)

    def start(self) -> threading.Thread:
        """Run on a daemon thread of its own (``kep-delay-forwarder``)."""
        thread = threading.Thread(target=self.run, name="kep-delay-forwarder", daemon=True)
        thread.start()
        return thread

    def run(self) -> None:
        self._producer = Producer(
            {**self._kafka.as_librdkafka_dict(), **ProducerSettings().as_librdkafka_dict()}
        )
        consumer = self._consumer = Consumer(self._conf)
        consumer.subscribe(
            list(self._tiers), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        log.info("delay forwarder started", group=self.delays.group, tiers=list(self._tiers))
        try:
            while not self._stop.is_set():
                try:
                    self._step(consumer)
                except KafkaException as exc:  # a fatal client error: said, then tried again
                    log.error("delay forwarder error", error=str(exc))
                    self._stop.wait(1.0)
        finally:
            self._finish(consumer)

    def _step(self, consumer: Consumer) -> None:
        self._beat()
        now = self._clock()
        self._wake_due(now)
        assert self._producer is not None
        self._producer.poll(0)
        self._flow_control(consumer)
        if time.monotonic() - self._last_commit >= _COMMIT_EVERY_S:
            self._commit(consumer, asynchronous=True)
        wait_s = _MAX_WAIT_S
        if self._schedule:
            wait_s = min(wait_s, max(0.0, (self._schedule[0][0] - self._clock()) / 1000))
        for msg in consumer.consume(500, wait_s):
            self._take(msg)

    def _finish(self, consumer: Consumer) -> None:
        assert self._producer is not None
        self._producer.flush(10)
        try:
            self._commit(consumer, asynchronous=False)
        finally:
            consumer.close()
            log.info("delay forwarder stopped", group=self.delays.group)

    # -- reading --------------------------------------------------------------------------------------------
    def _take(self, msg: Message) -> None:
        error = msg.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("delay tier read error", error=error.str())
            return
        tp = (msg.topic() or "", msg.partition() or 0)
        part = self._parts.get(tp)
        offset = msg.offset() or 0
        if part is None or offset < part.next_offset:
            return  # not ours any more, or delivered again after a pause
        if part.base < 0:
            part.base = offset
        part.next_offset = offset + 1
        part.tracker.add(offset)
        part.outstanding += 1
        now = self._clock()
        scheduled = schedule(msg.headers(), self._destinations, now, self.delays.max_delay)
        entry = _Entry(tp, part.generation, msg, None)
        if isinstance(scheduled, Reject):
            entry.step = scheduled
            self._send(entry, now)
            return
        entry.scheduled = scheduled
        step = next_step(self.delays, scheduled, now)
        if isinstance(step, Retier):  # more than the smallest tier left: wait out this tier first
            _, timestamp = msg.timestamp()
            self._push(leave_ms(timestamp, now, part.tier_s, scheduled.due_ms), entry)
        else:
            self._act(entry, step, now)

    def _push(self, wake_ms: int, entry: _Entry) -> None:
        heapq.heappush(self._schedule, (wake_ms, next(self._seq), entry))

    def _wake_due(self, now: int) -> None:
        schedule_ = self._schedule
        while schedule_ and schedule_[0][0] <= now:
            _, _, entry = heapq.heappop(schedule_)
            part = self._parts.get(entry.tp)
            if part is None or part.generation != entry.generation:
                continue  # revoked: the next owner reads it again
            if entry.step is not None:
                self._send(entry, now)  # a send that failed, again
            else:
                assert entry.scheduled is not None
                self._act(entry, next_step(self.delays, entry.scheduled, now), now)

    def _act(self, entry: _Entry, step: Deliver | Hold | Retier, now: int) -> None:
        if isinstance(step, Hold):
            self._push(step.until_ms, entry)
            return
        entry.step = step
        self._send(entry, now)

    # -- sending --------------------------------------------------------------------------------------------
    def _send(self, entry: _Entry, now: int) -> None:
        msg, step = entry.msg, entry.step
        assert self._producer is not None and step is not None
        if isinstance(step, Deliver):
            topic, headers = step.destination, forward_headers(msg.headers())
        elif isinstance(step, Retier):
            topic, headers = step.topic, _pairs(msg)
        else:
            topic = self.delays.dlq_topic
            headers = [*_pairs(msg), (h.DELAY_ERROR, step.reason.encode("utf-8", "replace"))]
            self._log_reject(entry, step.reason)

        def delivered(err: KafkaError | None, _: Message) -> None:
            self._delivered(entry, err, topic)

        try:
            self._producer.produce(topic, msg.value(), msg.key(), headers=headers, on_delivery=delivered)
        except BufferError:
            self._push(now + 50, entry)  # the local queue is full: try again shortly
        except Exception as exc:  # noqa: BLE001 - a refused produce must not stop the loop
            self._failed(entry, topic, str(exc), retriable=False)

    def _delivered(self, entry: _Entry, err: KafkaError | None, topic: str) -> None:
        if err is not None:
            self._failed(entry, topic, err.str(), retriable=err.retriable())
            return
        part = self._parts.get(entry.tp)
        if isinstance(entry.step, Deliver) and entry.scheduled is not None:
            self.metrics.lateness.observe(max(0.0, (self._clock() - entry.scheduled.due_ms) / 1000))
        kind = {Deliver: "destination", Retier: "tier", Reject: "dlq"}[type(entry.step)]
        self.metrics.forwarded.labels(kind).inc()
        if part is not None and part.generation == entry.generation:
            part.tracker.done(entry.msg.offset() or 0)
            part.outstanding -= 1

    def _failed(self, entry: _Entry, topic: str, reason: str, *, retriable: bool) -> None:
        """Send again in a second; a destination that refuses for good gets the record as a dead letter."""
        if self._may_log("failed"):
            log.warning("delay forward failed", topic=topic, error=reason, retrying=True)
        if not retriable and isinstance(entry.step, Deliver):
            entry.step = Reject(f"destination {topic!r} refused the record: {reason}")
        self._push(self._clock() + _RETRY_SEND_MS, entry)

    def _log_reject(self, entry: _Entry, reason: str) -> None:
        if self._may_log("reject"):
            log.error(
                "delayed record dead-lettered",
                tier=entry.tp[0],
                partition=entry.tp[1],
                offset=entry.msg.offset(),
                reason=reason,
                dead_letter_topic=self.delays.dlq_topic,
            )

    def _may_log(self, kind: str) -> bool:
        """At most ``_LOGS_PER_MINUTE`` lines of one kind a minute: a flood of bad records or failed sends must
        not flood the log."""
        now = time.monotonic()
        recent = self._logged[kind] = [t for t in self._logged.get(kind, []) if now - t < 60]
        if len(recent) >= _LOGS_PER_MINUTE:
            return False
        recent.append(now)
        return True

    # -- partitions -----------------------------------------------------------------------------------------
    def _flow_control(self, consumer: Consumer) -> None:
        for (topic, partition), part in self._parts.items():
            if not part.paused and part.outstanding >= self._read_ahead:
                consumer.pause([TopicPartition(topic, partition)])
                part.paused = True
            elif part.paused and part.outstanding <= self._read_ahead // 2:
                consumer.resume([TopicPartition(topic, partition)])
                part.paused = False

    def _commit(self, consumer: Consumer, *, asynchronous: bool) -> None:
        self._last_commit = time.monotonic()
        offsets = []
        pending = {self._suffix(t): 0 for t in self._tiers}
        for (topic, partition), part in self._parts.items():
            target = part.tracker.committable()
            if target is not None:
                offsets.append(TopicPartition(topic, partition, target))
                part.tracker.mark_committed(target)
            committed = part.tracker.committed
            start = committed if committed is not None else part.base
            if start >= 0:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
                pending[self._suffix(topic)] += max(0, high - start) if high >= 0 else part.outstanding
        self._pending_snapshot = pending
        if not offsets:
            return
        try:
            if asynchronous:
                consumer.commit(offsets=offsets, asynchronous=True)
            else:
                consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as exc:  # noqa: BLE001 - committed again next time
            log.warning("delay forwarder commit failed", error=str(exc))
            for tp in offsets:
                owner = self._parts.get((tp.topic, tp.partition))
                if owner is not None:
                    owner.tracker.forget_committed()

    def _suffix(self, topic: str) -> str:
        return topic.removeprefix(self.delays.prefix + ".")

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            tier_s = self._tiers.get(tp.topic, self.delays.smallest_s)
            self._parts[(tp.topic, tp.partition)] = _Partition(next(self._generations), tp.topic, tier_s)
        log.info("delay tiers assigned", partitions=[f"{tp.topic}[{tp.partition}]" for tp in partitions])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._producer is not None:
            self._producer.flush(10)
        self._commit(consumer, asynchronous=False)
        self._drop(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._drop(partitions)

    def _drop(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._parts.pop((tp.topic, tp.partition), None)


def _pairs(msg: Message) -> list[tuple[str, h.HeaderValue]]:
    headers = msg.headers()
    return list(headers.items()) if isinstance(headers, dict) else list(headers or ())
