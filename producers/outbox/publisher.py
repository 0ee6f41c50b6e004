"""How the relay hands a batch of rows to Kafka: in one transaction with a progress marker (exactly once), or
with the idempotent producer and a flush (at least once).

Exactly once: the batch's records and a marker (the batch's ids as ranges, keyed by the relay id) go to the
cluster in one Kafka transaction, the marker to a small compacted topic. Rows are marked sent in the database
only after the commit. A relay killed between the commit and marking finds, at its start, the last committed
marker (read read_committed after ``init_transactions`` fenced and finished any transaction of a previous
incarnation) and marks those rows sent before it publishes anything: the batch is not sent twice. A relay killed
before the commit leaves an aborted transaction, invisible to read_committed consumers; its rows are still
unsent and go again. Consumers of the downstream topics must read read_committed (librdkafka's default, kep's
workers' too).

At least once (the embedded broker, whose read_committed consumers see aborted transactions): a relay killed
between the acknowledgement and marking publishes that batch again; every copy carries the same event id in
``kep-idempotency-key``, which kep consumers deduplicate on.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from kep.producers.errors import OutboxError
from kep.producers.outbox.record import headers_from_json
from kep.producers.outbox.table import Row, id_ranges
from kep.producers.settings import ProducerSettings
from kep.topology.settings import KafkaSettings

Ranges = list[tuple[int, int]]


def transactional_id(relay_id: str) -> str:
    return f"kep-outbox-relay-{relay_id}"


def marker_value(ranges: Ranges) -> bytes:
    return orjson.dumps({"v": 1, "ranges": ranges, "at_ms": time.time_ns() // 1_000_000})


def marker_ranges(value: bytes | None) -> Ranges | None:
    """The id ranges of a marker record; None for a tombstone or anything unreadable."""
    if not value:
        return None
    try:
        data = orjson.loads(value)
        return [(int(low), int(high)) for low, high in data["ranges"]]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


class Publisher:
    """Sends one batch of rows; raises on any failure (nothing may then be marked sent)."""

    def recover(self) -> Ranges:
        """The rows a previous incarnation published but may not have marked sent."""
        return []

    def send(self, rows: Sequence[Row], crash: Any = None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def _producer_config(kafka: KafkaSettings) -> dict[str, Any]:
    conf = {**kafka.as_librdkafka_dict(), **ProducerSettings().as_librdkafka_dict()}
    conf["linger.ms"] = 5
    return conf


class AtLeastOncePublisher(Publisher):
    def __init__(self, kafka: KafkaSettings, timeout_s: float = 60.0) -> None:
        self._producer = Producer(_producer_config(kafka))
        self._timeout_s = timeout_s

    def send(self, rows: Sequence[Row], crash: Any = None) -> None:
        errors: list[KafkaError] = []

        def delivered(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                errors.append(err)

        for row in rows:
            self._produce_one(row, delivered)
        if self._producer.flush(self._timeout_s) or errors:
            detail = errors[0].str() if errors else "not acknowledged in time"
            raise OutboxError(f"outbox relay: a record was not published ({detail}); the batch goes again")

    def _produce_one(self, row: Row, callback: Any) -> None:
        while True:
            try:
                self._producer.produce(
                    row.topic,
                    row.value,
                    row.key,
                    headers=_headers(row),
                    on_delivery=callback,
                )
                return
            except BufferError:
                self._producer.poll(0.1)

    def close(self) -> None:
        self._producer.flush(10)


class TransactionalPublisher(Publisher):
    def __init__(
        self,
        kafka: KafkaSettings,
        relay_id: str,
        state_topic: str,
        *,
        transaction_timeout_ms: int = 60_000,
        timeout_s: float = 60.0,
    ) -> None:
        self.kafka, self.relay_id, self.state_topic = kafka, relay_id, state_topic
        self._timeout_s = timeout_s
        conf = _producer_config(kafka)
        conf["transactional.id"] = transactional_id(relay_id)
        conf["transaction.timeout.ms"] = transaction_timeout_ms
        conf["delivery.timeout.ms"] = min(int(conf["delivery.timeout.ms"]), transaction_timeout_ms)
        self._producer = Producer(conf)
        # Fences any earlier producer with this id and finishes (aborts) its open transaction.
        self._producer.init_transactions(timeout_s)

    def recover(self) -> Ranges:
        return read_marker(self.kafka, self.state_topic, self.relay_id, self._timeout_s) or []

    def send(self, rows: Sequence[Row], crash: Any = None) -> None:
        p = self._producer
        p.begin_transaction()
        try:
            for row in rows:
                while True:
                    try:
                        p.produce(row.topic, row.value, row.key, headers=_headers(row))
                        break
                    except BufferError:
                        p.poll(0.1)
            p.produce(self.state_topic, marker_value(id_ranges([r.id for r in rows])), self.relay_id.encode())
            if crash is not None:
                crash("in-transaction")
            p.commit_transaction(self._timeout_s)
        except KafkaException as exc:
            err = exc.args[0]
            if isinstance(err, KafkaError) and err.txn_requires_abort():
                try:
                    p.abort_transaction(self._timeout_s)
                except KafkaException:
                    pass
            raise OutboxError(f"outbox relay: the batch's transaction failed: {err}") from exc

    def close(self) -> None:
        self._producer.flush(10)


def read_marker(kafka: KafkaSettings, topic: str, relay_id: str, timeout_s: float = 30.0) -> Ranges | None:
    """The last committed marker of ``relay_id`` on ``topic`` (read_committed, every partition to its true
    end, so a transaction of another relay still open only delays the answer); None when there is none."""
    from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

    try:
        from confluent_kafka import IsolationLevel
    except ImportError:  # pragma: no cover - older clients
        from confluent_kafka.admin import IsolationLevel  # type: ignore[attr-defined,no-redef]

    deadline = time.monotonic() + timeout_s
    admin = AdminClient(kafka.as_librdkafka_dict())
    metadata = admin.list_topics(topic, timeout=timeout_s).topics.get(topic)
    if metadata is None or metadata.error is not None:
        return None
    tps = [TopicPartition(topic, p) for p in metadata.partitions]
    latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
    futures = admin.list_offsets(
        {tp: latest for tp in tps},
        isolation_level=IsolationLevel.READ_UNCOMMITTED,
        request_timeout=timeout_s,
    )
    ends = {tp.partition: int(f.result(timeout_s).offset) for tp, f in futures.items()}
    pending = {p for p, end in ends.items() if end > 0}
    if not pending:
        return None
    conf = kafka.as_librdkafka_dict()
    conf.update(
        {
            "group.id": f"kep-outbox-marker-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 50,
        }
    )
    consumer = Consumer(conf)
    found: Ranges | None = None
    key = relay_id.encode()
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in pending])
        while pending:
            if time.monotonic() > deadline:
                raise OutboxError(f"outbox relay: could not read its progress marker on {topic!r} in time")
            msg = consumer.poll(0.2)
            if msg is not None:
                err = msg.error()
                if err is None and msg.key() == key:
                    found = marker_ranges(msg.value())
                elif err is not None and err.code() != KafkaError._PARTITION_EOF:
                    raise OutboxError(f"outbox relay: reading its progress marker: {err.str()}")
            for tp in consumer.position([TopicPartition(topic, p) for p in list(pending)]):
                if tp.offset >= ends[tp.partition]:
                    pending.discard(tp.partition)
            if msg is not None and msg.error() is not None:
                partition, offset = msg.partition(), msg.offset()
                if partition is not None and offset is not None and offset >= ends.get(partition, 0):
                    pending.discard(partition)
    finally:
        consumer.close()
    return found


def _headers(row: Row) -> list[tuple[str, str | bytes | None]]:
    return list(headers_from_json(row.headers))


def ensure_state_topic(kafka: KafkaSettings, topic: str, timeout_s: float = 30.0) -> None:
    """Create the compacted relay-state topic when it does not exist (one partition)."""
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient(kafka.as_librdkafka_dict())
    if topic in admin.list_topics(timeout=timeout_s).topics:
        return
    # Compacted, with hourly segments: a relay starting reads at most about an hour of markers.
    config = {"cleanup.policy": "compact", "segment.ms": "3600000", "min.cleanable.dirty.ratio": "0.1"}
    spec = NewTopic(topic, num_partitions=1, replication_factor=-1, config=config)
    future = admin.create_topics([spec], request_timeout=timeout_s)[topic]
    try:
        future.result(timeout_s)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise OutboxError(
                f"outbox relay: cannot create its state topic {topic!r}: {exc.args[0].str()}"
            ) from exc
