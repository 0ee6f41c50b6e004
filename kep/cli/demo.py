"""``kep demo``: the whole path on a laptop, with nothing installed but kep.

Starts the embedded broker, creates the shipped topology, publishes sample orders and payments, reads them
back with a plain decoding consumer and prints what was produced and consumed per partition. Exits 1 if any
event is missing, and stops by itself at a hard deadline.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated

import typer
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from rich.table import Table

from kep.broker import EmbeddedBroker
from kep.cli._common import console, err_console, fail
from producers import DeliveryError, DeliveryReport, EventProducer, sample_events
from schemas.codec import EventCodec, codec_for
from schemas.errors import KepError
from topology import KafkaSettings, Topology, load_topology

TopicPartitionKey = tuple[str, int]


@dataclass
class Traffic:
    """Events per topic and partition, and the idempotency keys seen, on one side (produced or consumed)."""

    per_partition: Counter[TopicPartitionKey] = field(default_factory=Counter)
    keys: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)


class Deadline:
    """The demo's time budget. ``remaining()`` for loops; ``watchdog()`` ends the process if it is overrun."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._end - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0

    @contextmanager
    def watchdog(self, broker: EmbeddedBroker) -> Iterator[None]:
        """Past the deadline plus a grace of 5 s, stop the broker and exit with code 3."""

        def expire() -> None:
            err_console.print(f"[red]error:[/red] demo overran its {self.seconds:.0f}s deadline; stopping")
            broker.stop()
            os._exit(3)

        timer = threading.Timer(max(self.remaining(), 0) + 5.0, expire)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()


def start_broker() -> EmbeddedBroker:
    """Start the embedded broker (Tansu) on a free loopback port."""
    broker = EmbeddedBroker().start()
    console.print(f"embedded broker ready on {broker.bootstrap_servers}")
    return broker


def apply_topology(topology: Topology, kafka: KafkaSettings) -> None:
    """Create every topic of the topology (source, retry and dead-letter topics)."""
    from topology import admin

    plan = admin.plan(topology, kafka)
    admin.apply(plan, kafka)
    console.print(
        f"topology applied: {len(topology.topics)} declared topics and their retry/dead-letter topics"
    )


def produce(
    kafka: KafkaSettings, topology: Topology, codec: EventCodec, count: int, deadline: Deadline
) -> Traffic:
    """Publish ``count`` sample events (orders, each followed by its payment) and wait for every ack."""
    produced = Traffic()

    def on_delivery(report: DeliveryReport | None, error: DeliveryError | None) -> None:
        if report is not None:
            produced.per_partition[(report.topic, report.partition)] += 1
        else:
            produced.failures.append(str(error))

    events = sample_events(count, kind="mixed", start=datetime.now(UTC))
    start = time.monotonic()
    with EventProducer(kafka, topology, codec=codec) as producer:
        for event in events:
            producer.publish(event, on_delivery=on_delivery)
            produced.keys.add(event.idempotency_key())
        producer.flush(max(deadline.remaining(), 1.0))
    elapsed = time.monotonic() - start
    console.print(f"produced {sum(produced.per_partition.values())} events in {elapsed:.2f}s")
    return produced


def consume(kafka: KafkaSettings, codec: EventCodec, produced: Traffic, deadline: Deadline) -> Traffic:
    """Read every partition that received events from the start, decoding each record, until all are seen."""
    consumed = Traffic()
    conf = {
        **kafka.as_librdkafka_dict(),
        "group.id": "kep-demo-reader",
        "enable.auto.commit": False,
        "allow.auto.create.topics": False,
        "session.timeout.ms": 6000,
        "fetch.wait.max.ms": 50,
    }
    consumer = Consumer(conf)
    try:
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in sorted(produced.per_partition)])
        while not produced.keys <= consumed.keys and not deadline.expired():
            for msg in consumer.consume(num_messages=500, timeout=0.2):
                if msg.error() is not None:
                    consumed.failures.append(str(msg.error()))
                    continue
                try:
                    event = codec.decode(msg.value() or b"")
                except KepError as exc:
                    consumed.failures.append(f"{msg.topic()}[{msg.partition()}]@{msg.offset()}: {exc}")
                    continue
                consumed.per_partition[(msg.topic() or "?", msg.partition() or 0)] += 1
                consumed.keys.add(event.idempotency_key())
    finally:
        consumer.close()
    return consumed


def report(produced: Traffic, consumed: Traffic) -> int:
    """Print the per-partition table; the number of produced events that were never consumed."""
    table = Table(title="kep demo", title_justify="left")
    for name, justify in (
        ("topic", "left"),
        ("partition", "right"),
        ("produced", "right"),
        ("consumed", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for topic, partition in sorted(set(produced.per_partition) | set(consumed.per_partition)):
        key = (topic, partition)
        table.add_row(
            topic, str(partition), str(produced.per_partition[key]), str(consumed.per_partition[key])
        )
    missing = len(produced.keys - consumed.keys)
    table.add_section()
    table.add_row(
        "total", "", str(sum(produced.per_partition.values())), str(sum(consumed.per_partition.values()))
    )
    console.print(table)
    for failure in (produced.failures + consumed.failures)[:5]:
        err_console.print(f"[red]failure:[/red] {failure}", highlight=False)
    console.print(f"missing: {missing}")
    return missing


def command(
    events: Annotated[int, typer.Option("--events", "-n", min=1, help="Sample events to produce.")] = 5000,
    deadline_s: Annotated[float, typer.Option("--deadline", help="Give up after this many seconds.")] = 50.0,
) -> None:
    """Run the embedded broker, create the topology, produce sample orders and payments and read them back."""
    deadline = Deadline(deadline_s)
    broker = start_broker()
    try:
        with deadline.watchdog(broker):
            kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
            topology = load_topology()
            codec = codec_for()
            apply_topology(topology, kafka)
            produced = produce(kafka, topology, codec, events, deadline)
            consumed = consume(kafka, codec, produced, deadline)
            missing = report(produced, consumed)
    except KepError as exc:
        fail(str(exc), code=1)
    finally:
        broker.stop()
    if missing or produced.failures:
        fail(f"{missing} event(s) produced but not consumed, {len(produced.failures)} failed to send", code=1)
    console.print("[green]demo ok[/green]: every event produced was consumed")
