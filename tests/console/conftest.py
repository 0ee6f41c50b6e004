"""Console test helpers: a unique applied topology with dead letters, and the console served on a free port."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from pydantic import SecretStr

from kep.console.app import create_app
from kep.console.server import BackgroundServer, uvicorn_config
from kep.console.settings import ConsoleSettings
from kep.topology import admin
from kep.topology.loader import load_topology
from kep.topology.model import Topology
from kep.topology.settings import KafkaSettings
from tests.dlq.conftest import DeadLetters

TOKEN = "operator-token-for-tests"


@dataclass
class Cluster:
    """A source topic read by two groups; ``group`` retries once (1 s tier) and dead-letters."""

    kafka: str
    source: str
    group: str
    other: str
    dlq: str
    tier: str
    topology: Topology
    topology_file: Path
    dead_letters: DeadLetters

    def commit(self, group: str, offsets: dict[int, int]) -> None:
        """Commit ``offsets`` (partition -> offset) on the source topic for ``group``: it exists on the cluster."""
        consumer = Consumer({"bootstrap.servers": self.kafka, "group.id": group, "enable.auto.commit": False})
        try:
            tps = [TopicPartition(self.source, p, o) for p, o in offsets.items()]
            consumer.commit(offsets=tps, asynchronous=False)
        finally:
            consumer.close()


@pytest.fixture
def cluster(kafka: str, tmp_path: Path) -> Iterator[Cluster]:
    suffix = uuid.uuid4().hex[:10]
    source, group, other = f"orders-{suffix}", f"billing-{suffix}", f"shipping-{suffix}"
    topology_file = tmp_path / "topology.yaml"
    topology_file.write_text(
        f"""
topics:
  - name: {source}
    partitions: 2
    value_schema: kep.orders.OrderPlaced
    key_field: order_id
groups:
  - name: {group}
    topics: [{source}]
    retry:
      delays: [1s]
  - name: {other}
    topics: [{source}]
    retry:
      dead_letter: false
"""
    )
    topology = load_topology(topology_file)
    settings = KafkaSettings(bootstrap_servers=kafka)
    admin.apply(admin.plan(topology, settings), settings)
    dlq = f"{source}.{group}.dlq"
    producer = Producer({"bootstrap.servers": kafka, "enable.idempotence": True, "linger.ms": 0})
    letters = DeadLetters(kafka, source, group, dlq, 2, topology_file, producer, f"{source}.{group}.retry.1s")
    yield Cluster(
        kafka, source, group, other, dlq, f"{source}.{group}.retry.1s", topology, topology_file, letters
    )
    producer.close()


@dataclass
class Served:
    url: str
    cluster: Cluster
    settings: ConsoleSettings

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, follow_redirects=False, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def served(cluster: Cluster, tmp_path: Path) -> Iterator[Served]:
    """The console on a free loopback port, operator token ``TOKEN``, polling every 0.5 s."""
    settings = ConsoleSettings(
        host="127.0.0.1",
        port=0,
        operator_token=SecretStr(TOKEN),
        database=tmp_path / "console.db",
        group_filter=f"({cluster.group}|{cluster.other})",
        poll_interval_s=0.5,
        kafka_timeout_s=10,
    )
    app = create_app(settings, cluster.topology, kafka=KafkaSettings(bootstrap_servers=cluster.kafka))
    server = BackgroundServer(uvicorn_config(app, settings)).start()
    try:
        yield Served(server.url, cluster, settings)
    finally:
        server.stop()


def csrf(client: httpx.Client, path: str = "/groups") -> str:
    """Load a page (which sets the CSRF cookie) and return the form token on it."""
    page = client.get(path)
    marker = 'name="csrf_token" value="'
    text = page.text
    start = text.index(marker) + len(marker)
    return text[start : text.index('"', start)]
