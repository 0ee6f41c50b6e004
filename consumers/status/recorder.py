"""``StatusRecorder``: the worker's ``Outcomes``. Records each event's state, counts batch members, and
publishes one ``BatchCompleted`` per finished batch and group.

Event states are written by a background thread in batches (they are for people asking; a worker killed
between a state and its write loses that state, never a message). Batch members are counted synchronously,
before the message's offset can be committed: a worker killed after that count but before the commit gets
the message again, and counting it again changes nothing; a worker killed before the count gets it again and
counts it then. So every member is counted, exactly once, whatever the crashes.

The member that finishes a batch publishes its ``BatchCompleted`` before its own offset is committed. Who
publishes is decided by a claim in the idempotency store (namespace ``<group>.batch-completed``, key the batch
id): the claimer publishes, waits for the acknowledgement, then completes the claim; the others wait for that.
A claimer killed mid-way leaves its message uncommitted and its claim to expire (``lease_s``): the message is
delivered again, the batch is found finished and not announced, and it is announced then. The event id is
derived from group and batch id, so even a copy published twice would be processed once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog
from confluent_kafka import Message

from kep.consumers.context import MessageContext
from kep.consumers.errors import IdempotencyStoreError, exception_name
from kep.consumers.idempotency.base import ClaimState, IdempotencyStore
from kep.consumers.idempotency.factory import open_store
from kep.consumers.settings import ConsumerSettings
from kep.consumers.status.factory import open_status_store
from kep.consumers.status.hook import Cancelled, NoOutcomes
from kep.consumers.status.model import BatchProgress, EventStatus, MemberState, State
from kep.consumers.status.store import StatusStore
from kep.producers import headers as h
from kep.producers.errors import ProducerError
from kep.producers.producer import EventProducer
from kep.schemas.batches import BatchCompleted, batch_completed_id
from kep.topology.model import Topology
from kep.topology.settings import KafkaSettings

log = structlog.get_logger(__name__)

_BACKOFF_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
#: Records written in one call at most: a flush writes all that came in since the last (0.2 s), so that under load
#: one SQLite transaction carries thousands of rows. Each row dirties a page of a table keyed by event id, and a
#: page changed by many rows is written to the log once: 5,000 rows a transaction cost half as much each as 500.
_WRITE_BATCH = 5000
_MAX_QUEUED = 100_000
_LOG_EVERY_S = 10.0
#: A handler still running after this long shows as "processing" (shorter ones go straight to their outcome).
PROCESSING_AFTER_S = 1.0
#: How long a claim to publish a batch's BatchCompleted holds when its worker dies mid-way.
ANNOUNCE_LEASE_S = 15.0


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class StatusRecorder:
    """Records outcomes for one consumer group. ``close()`` writes what is queued and releases everything."""

    def __init__(
        self,
        store: StatusStore,
        group: str,
        *,
        claims: IdempotencyStore | None = None,
        topology: Topology | None = None,
        kafka: KafkaSettings | None = None,
        producer_factory: Callable[[], EventProducer] | None = None,
        flush_interval_s: float = 0.2,
    ) -> None:
        self.store = store
        self.group = group
        self.claims = claims
        self._topic = _completed_topic(topology)
        self._producer_factory = producer_factory or (
            (lambda: EventProducer(kafka, topology)) if kafka is not None and topology is not None else None
        )
        self._producer: EventProducer | None = None
        self._producer_lock = threading.Lock()
        self._queue: deque[EventStatus] = deque()
        # Lanes hand over plain tuples; the writer thread builds the records (off the hot path).
        # key -> (the message's headers, topic, attempt, since ms)
        self._running: dict[str, tuple[Any, str, int, int]] = {}
        self._pending: deque[tuple[Any, ...]] = deque()
        self._shown: dict[str, tuple[int, int]] = {}  # "processing" written for (attempt, since)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flush_interval_s = flush_interval_s
        self._dropped = 0
        self._logged_at: dict[str, float] = {}
        self._writer = threading.Thread(target=self._write_loop, name=f"kep-status-{group}", daemon=True)
        self._writer.start()

    # -- Outcomes -----------------------------------------------------------------------------------------
    def started(self, msg: Message, ctx: MessageContext) -> None:
        # On the hot path only a dict entry: the writer writes "processing" for handlers still running after
        # PROCESSING_AFTER_S, and "replayed" for a copy republished by `kep dlq replay` it finds running (one
        # that finishes first has its `replayed_at_ms` on its final record).
        self._running[ctx.idempotency_key] = (ctx.headers, ctx.topic, ctx.attempt, _now_ms())

    def handled(self, msg: Message, ctx: MessageContext, cancelled: Cancelled) -> None:
        self._final(
            msg, ctx.idempotency_key, ctx.topic, "handled", ctx.attempt, None, None, cancelled, ctx.headers
        )

    def duplicate(self, msg: Message, ctx: MessageContext, cancelled: Cancelled) -> None:
        # Only batches care: the member may have been handled by a worker that died before counting it.
        if h.header_bytes(msg.headers(), h.BATCH_ID) is not None:
            self._count(msg, ctx.idempotency_key, "handled", cancelled)

    def retrying(
        self,
        msg: Message,
        ctx: MessageContext | None,
        tier: str,
        attempt: int,
        due_ms: int,
        exc: BaseException,
    ) -> None:
        key, topic = self._identity(msg, ctx)
        if key is None:
            return
        self._running.pop(key, None)
        batch = h.header_str(msg.headers(), h.BATCH_ID)
        self._enqueue(
            EventStatus(
                key, self.group, "retrying", _now_ms(), topic, attempt, tier=tier, due_ms=due_ms,
                exception_type=exception_name(exc), batch_id=batch,
            )
        )  # fmt: skip

    def dead_lettered(
        self,
        msg: Message,
        ctx: MessageContext | None,
        exc: BaseException,
        reason: str,
        cancelled: Cancelled,
        *,
        dropped: bool = False,
    ) -> None:
        key, topic = self._identity(msg, ctx)
        if key is None:
            return
        state: State = "dropped" if dropped else "dead_lettered"
        attempt = ctx.attempt if ctx is not None else 1
        headers = ctx.headers if ctx is not None else None
        self._final(msg, key, topic, state, attempt, exception_name(exc), reason, cancelled, headers)

    # -- internals ----------------------------------------------------------------------------------------
    def _identity(self, msg: Message, ctx: MessageContext | None) -> tuple[str | None, str]:
        if ctx is not None:
            return ctx.idempotency_key, ctx.topic
        key = h.header_str(msg.headers(), h.IDEMPOTENCY_KEY)
        return key, h.header_str(msg.headers(), h.ORIGINAL_TOPIC) or str(msg.topic())

    def _final(
        self,
        msg: Message,
        key: str,
        topic: str,
        state: State,
        attempt: int,
        exception_type: str | None,
        reason: str | None,
        cancelled: Cancelled,
        headers: Any = None,
    ) -> None:
        """``headers``: the message's, when the caller has them already (else read from ``msg``)."""
        if headers is None:
            headers = msg.headers()
        self._running.pop(key, None)
        self._pending.append((key, headers, topic, state, attempt, exception_type, reason, _now_ms()))
        if _has(headers, _BATCH_ID):
            self._count(msg, key, "handled" if state == "handled" else "dead_lettered", cancelled)

    def _count(self, msg: Message, key: str, state: MemberState, cancelled: Cancelled) -> None:
        """Count the member (retried until the store answers or the partition is given up), then announce the
        batch if this finished it."""
        headers = msg.headers()
        batch_id = h.header_str(headers, h.BATCH_ID)
        total = h.header_int(headers, h.BATCH_SIZE)
        if batch_id is None or total is None or total < 1:
            self._warn(
                "batch", "batch member without a usable kep-batch-size: not counted", batch_id=batch_id
            )
            return
        waits = 0
        while True:
            try:
                progress = self.store.record_member(self.group, batch_id, total, key, state, _now_ms())
                break
            except IdempotencyStoreError as exc:
                self._warn(
                    "store", "status store unavailable; waiting to count a batch member", error=str(exc)
                )
                if self._pause(cancelled, waits):
                    return
                waits += 1
        if progress.finished and not progress.announced_ms:
            self._announce(progress, cancelled)

    def _announce(self, progress: BatchProgress, cancelled: Cancelled) -> None:
        batch_id = progress.batch_id
        if self._topic is None or self._producer_factory is None:
            self._warn(
                "topic",
                "batch finished, but no topic of the topology carries kep.batches.BatchCompleted: not announced",
                batch_id=batch_id,
            )
            return
        waits = 0
        while True:
            try:
                claim = self.claims.claim(batch_id) if self.claims is not None else ClaimState.NEW
                if claim is ClaimState.DONE:
                    self.store.mark_announced(self.group, batch_id, _now_ms())
                    return
                if claim is ClaimState.NEW:
                    self._publish(progress)
                    if self.claims is not None:
                        self.claims.complete(batch_id)
                    self.store.mark_announced(self.group, batch_id, _now_ms())
                    log.info("batch completed", group=self.group, batch_id=batch_id, total=progress.total,
                             dead_lettered=progress.dead_lettered)  # fmt: skip
                    return
            except (IdempotencyStoreError, ProducerError) as exc:
                self._warn("announce", "cannot announce a finished batch yet; retrying", error=str(exc))
                if self.claims is not None:
                    try:
                        self.claims.release(batch_id)
                    except IdempotencyStoreError:
                        pass  # the lease expires by itself
            if self._pause(cancelled, waits):  # BUSY: another member's worker is announcing it
                return
            waits += 1

    def _publish(self, progress: BatchProgress) -> None:
        dead = self.store.dead_members(self.group, progress.batch_id) if progress.dead_lettered else []
        event = BatchCompleted(
            event_id=batch_completed_id(self.group, progress.batch_id),
            batch_id=progress.batch_id,
            group=self.group,
            total=progress.total,
            handled=progress.handled,
            dead_lettered=progress.dead_lettered,
            dead_lettered_ids=dead,
        )
        self._producer_for().publish_and_wait(event, topic=self._topic, timeout=30.0)

    def _producer_for(self) -> EventProducer:
        with self._producer_lock:
            if self._producer is None:
                assert self._producer_factory is not None
                self._producer = self._producer_factory()
            return self._producer

    def _pause(self, cancelled: Cancelled, waits: int) -> bool:
        """Wait before trying again; True when the partition was given up or the recorder closed."""
        delay = _BACKOFF_S[min(waits, len(_BACKOFF_S) - 1)]
        return cancelled.wait(delay) or self._stop.is_set()

    def _warn(self, kind: str, message: str, **fields: object) -> None:
        now = time.monotonic()
        if now - self._logged_at.get(kind, -_LOG_EVERY_S) >= _LOG_EVERY_S:
            self._logged_at[kind] = now
            log.warning(message, group=self.group, **fields)

    # -- the writer ---------------------------------------------------------------------------------------
    def _enqueue(self, record: EventStatus) -> None:
        queue = self._queue
        if len(queue) >= _MAX_QUEUED:
            queue.popleft()
            self._dropped += 1
        queue.append(record)

    def _write_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._flush_interval_s)
            self._wake.clear()
            self._collect()
            self._write_queued()
        self._collect()
        self._write_queued()

    def _collect(self) -> None:
        """Turn what the lanes handed over into records (final states, "replayed" when a replayed copy arrives),
        and write "processing" for handlers running longer than ``PROCESSING_AFTER_S`` (once each)."""
        pending = self._pending
        while pending:
            key, headers, topic, state, attempt, exception_type, reason, at_ms = pending.popleft()
            self._enqueue(
                _record(self.group, key, headers, topic, state, attempt, at_ms, exception_type, reason)
            )
        cutoff = _now_ms() - int(PROCESSING_AFTER_S * 1000)
        forgotten = cutoff - 3_600_000  # a message whose partition was lost mid-handler: never reported
        shown = self._shown
        for key, running in list(self._running.items()):
            headers, topic, attempt, at_ms = running
            if at_ms < forgotten:
                self._running.pop(key, None)
                continue
            seen = shown.get(key)
            if seen == (attempt, at_ms):  # "processing" written
                continue
            if at_ms <= cutoff:
                shown[key] = (attempt, at_ms)
                self._enqueue(_record(self.group, key, headers, topic, "processing", attempt, at_ms + 1))
            elif attempt == 1 and seen != (0, at_ms) and _has(headers, _REPLAYED_AT):
                shown[key] = (0, at_ms)  # "replayed" written
                self._enqueue(_record(self.group, key, headers, topic, "replayed", 1, at_ms))
        for key in [k for k in self._shown if k not in self._running]:
            del self._shown[key]

    def _write_queued(self) -> None:
        queue = self._queue
        while queue:
            latest: dict[tuple[str, str], EventStatus] = {}
            for _ in range(min(len(queue), _WRITE_BATCH)):
                record = queue.popleft()
                latest[(record.event_id, record.group)] = record
            try:
                self.store.put_events(sorted(latest.values(), key=lambda r: r.at_ms))
            except IdempotencyStoreError as exc:
                self._dropped += len(latest)
                self._warn("write", "event states not recorded (status store unavailable)", error=str(exc),
                           dropped_so_far=self._dropped)  # fmt: skip
                return

    def flush(self, timeout: float = 5.0) -> None:
        """Write what is queued now (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        while (self._pending or self._queue) and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.01)  # sleep-ok: bounded wait for the writer thread

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._writer.join(10)
        with self._producer_lock:
            if self._producer is not None:
                self._producer.close(10)
                self._producer = None
        if self.claims is not None:
            self.claims.close()
        self.store.close()


def _record(
    group: str,
    key: str,
    headers: Any,
    topic: str,
    state: State,
    attempt: int,
    at_ms: int,
    exception_type: str | None = None,
    reason: str | None = None,
) -> EventStatus:
    batch_id: str | None = None
    replayed_at: int | None = None
    for name, value in headers or ():  # a consumed message's headers: a list of (name, value)
        if name == _BATCH_ID and value is not None and batch_id is None:
            batch_id = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        elif name == _REPLAYED_AT and value is not None and replayed_at is None:
            replayed_at = h.header_int([(name, value)], name)
    return EventStatus(
        key, group, state, at_ms, topic, attempt, None, None, exception_type, reason, batch_id, replayed_at
    )


_BATCH_ID, _REPLAYED_AT = h.BATCH_ID, h.REPLAYED_AT


def _has(headers: Any, name: str) -> bool:
    """Whether a header called ``name`` is there (a plain loop: this runs for every message)."""
    if headers:
        for key, _ in headers:
            if key == name:
                return True
    return False


def _completed_topic(topology: Topology | None) -> str | None:
    if topology is None:
        return None
    topics = topology.topics_for_event(BatchCompleted.avro_name)
    return topics[0].name if len(topics) == 1 else None


def status_recorder(
    settings: ConsumerSettings, group: str, topology: Topology, kafka: KafkaSettings
) -> StatusRecorder | NoOutcomes:
    """The worker's ``Outcomes``: a ``StatusRecorder`` on the idempotency store's URL, or nothing when
    ``event_status`` is off."""
    if not settings.event_status:
        return NoOutcomes()
    url = settings.idempotency_store
    store = open_status_store(url, ttl_s=settings.idempotency_ttl_s)
    claims = open_store(
        url, f"{group}.batch-completed", ttl_s=settings.idempotency_ttl_s, lease_s=ANNOUNCE_LEASE_S
    )
    return StatusRecorder(store, group, claims=claims, topology=topology, kafka=kafka)
