"""Dead-letter test helpers: build a dead-letter topic by hand, read committed offsets, run ``kep dlq``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from typer.testing import CliRunner

from kep.cli._common import console
from kep.cli.main import app
from kep.consumers.retry.headers import Provenance
from kep.producers import headers as h
from kep.schemas.codec import codec_for
from shop.orders import LineItem, OrderPlaced
from tests.support.kafka import create_topic

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@dataclass
class DeadLetters:
    """A source topic, its group and dead-letter topic on the broker, and what was put in the dead letters."""

    kafka: str
    source: str
    group: str
    dlq: str
    partitions: int
    topology_file: Path
    producer: Producer
    retry: str  # the group's first retry topic: where a replay hands its dead letters back
    sent: list[dict[str, object]] = field(default_factory=list)

    def add(
        self,
        *,
        partition: int,
        exc: BaseException,
        failed_at_ms: int,
        key: bytes | None = None,
        value: bytes | None = None,
        provenance: bool = True,
        original_topic: str | None = None,
        consumer_group: str | None = None,
    ) -> dict[str, object]:
        """Produce one dead letter (an encoded OrderPlaced unless ``value`` is given) and remember it."""
        order = OrderPlaced(
            order_id=f"o-{uuid.uuid4().hex[:8]}",
            customer_id="c-1",
            items=[LineItem(sku="sku-1", quantity=2, unit_price_cents=450)],
            amount_cents=900,
            currency="EUR",
        )
        codec = codec_for()
        key = key if key is not None else order.order_id.encode()
        value = value if value is not None else codec.encode(order)
        original: list[tuple[str, str | bytes | None]] = [
            (h.EVENT_TYPE, OrderPlaced.avro_name.encode()),
            (h.SCHEMA, codec.schema_ref(OrderPlaced).encode()),
            (h.IDEMPOTENCY_KEY, order.event_id.encode()),
            ("x-tenant", b"acme"),
            ("x-tenant", b"beta"),
            ("x-null", None),
        ]
        offset = len([s for s in self.sent if s["partition"] == partition])
        last_line = f"{type(exc).__name__}: {exc}"
        headers: list[tuple[str, str | bytes | None]] = list(original)
        if provenance:
            headers = [
                *Provenance(
                    original_topic=original_topic or self.source,
                    original_partition=partition,
                    original_offset=100 + offset,
                    original_timestamp_ms=failed_at_ms - 60_000,
                    consumer_group=consumer_group or self.group,
                    attempt=4,
                    first_failure_ms=failed_at_ms - 50_000,
                    last_failure_ms=failed_at_ms,
                    exception_type=f"{type(exc).__module__}.{type(exc).__qualname__}",
                    exception_message=str(exc),
                    exception_traceback=f"Traceback (most recent call last):\n  ...\n{last_line}",
                    idempotency_key=order.event_id,
                ).to_headers(original)
            ]
        self.producer.produce(self.dlq, value=value, key=key, partition=partition, headers=headers)
        assert self.producer.flush(10) == 0
        entry: dict[str, object] = {
            "partition": partition,
            "offset": offset,
            "key": key,
            "value": value,
            "event_id": order.event_id,
            "original_headers": original,
        }
        self.sent.append(entry)
        return entry


@pytest.fixture
def dead_letters(kafka: str, tmp_path: Path) -> Iterator[DeadLetters]:
    """A fresh source topic (2 partitions), its group's first retry topic and dead-letter topic, declared in a
    temp topology."""
    suffix = uuid.uuid4().hex[:10]
    source, group = f"orders-{suffix}", f"billing-{suffix}"
    dlq = f"{source}.{group}.dlq"
    create_topic(kafka, source, 2)
    create_topic(kafka, f"{source}.{group}.retry.1s", 2)
    create_topic(kafka, dlq, 2)
    topology_file = tmp_path / "topology.yaml"
    topology_file.write_text(
        f"""
topics:
  - name: {source}
    partitions: 2
    value_schema: kep.orders.OrderPlaced
    key_field: order_id
  - name: other-{suffix}
    partitions: 1
groups:
  - name: {group}
    topics: [{source}]
    retry:
      delays: [1s]
  - name: idle-{suffix}
    topics: [other-{suffix}]
"""
    )
    producer = Producer({"bootstrap.servers": kafka, "enable.idempotence": True, "linger.ms": 0})
    yield DeadLetters(kafka, source, group, dlq, 2, topology_file, producer, f"{source}.{group}.retry.1s")
    producer.close()


def committed(kafka: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": group})
    try:
        answer = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in answer if tp.offset >= 0}
    finally:
        consumer.close()


@pytest.fixture
def cli(kafka: str, monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str]]:
    """Run ``kep dlq ...`` in-process against the session broker: ``(exit code, output)``."""
    runner = CliRunner()
    monkeypatch.setattr(console, "width", 250)  # wide tables: cells are not wrapped in the captured output

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, ["dlq", *args, "-b", kafka], catch_exceptions=False)
        return result.exit_code, result.output

    return run


def json_output(output: str) -> Any:
    return json.loads(output)
