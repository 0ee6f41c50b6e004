"""Fixtures for topology tests: a topology file with names unique to the test, and the cluster's settings."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from kep.topology import KafkaSettings, Topology, load_topology

# Two topics and two groups; {orders}/{payments} become unique names. billing: 2 retry tiers + dlq on orders;
# shipping: one tier on orders and payments, dead letters off.
TEMPLATE = """\
topics:
  - name: {orders}
    partitions: {orders_partitions}
    replication_factor: {replication_factor}
    configs:
      retention.ms: "{retention_ms}"
  - name: {payments}
    partitions: 2
groups:
  - name: billing
    topics: [{orders}]
    retry:
      delays: [1s, 10s]
  - name: shipping
    topics: [{orders}, {payments}]
    retry:
      delays: [5s]
      dead_letter: false
"""


class TopologyFile:
    """Writes the template with unique topic names; ``write(**changes)`` rewrites it with other values."""

    def __init__(self, directory: Path) -> None:
        suffix = uuid.uuid4().hex[:10]
        self.orders = f"orders-{suffix}"
        self.payments = f"payments-{suffix}"
        self.path = directory / "topology.yaml"
        self.write()

    def write(
        self, *, orders_partitions: int = 3, replication_factor: int = 1, retention_ms: int = 3_600_000
    ) -> Topology:
        text = TEMPLATE.format(
            orders=self.orders,
            payments=self.payments,
            orders_partitions=orders_partitions,
            replication_factor=replication_factor,
            retention_ms=retention_ms,
        )
        self.path.write_text(textwrap.dedent(text))
        return load_topology(self.path)

    def write_without_replication_factor(self) -> Topology:
        """The template without any ``replication_factor``: the broker's default applies."""
        self.write()
        self.path.write_text(self.path.read_text().replace("    replication_factor: 1\n", ""))
        topology = load_topology(self.path)
        assert all(t.replication_factor is None for t in topology.topics)
        return topology

    def all_names(self) -> list[str]:
        o, p = self.orders, self.payments
        return [
            o,
            p,
            f"{o}.billing.retry.1s",
            f"{o}.billing.retry.10s",
            f"{o}.billing.dlq",
            f"{o}.shipping.retry.5s",
            f"{p}.shipping.retry.5s",
        ]


@pytest.fixture
def topology_file(tmp_path: Path) -> TopologyFile:
    return TopologyFile(tmp_path)


@pytest.fixture
def settings(kafka: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=kafka)


@pytest.fixture(scope="session")
def broker_is_tansu(kafka: str) -> bool:
    """True on the embedded broker (Tansu names its cluster ``tansu_cluster``); it has no CreatePartitions."""
    return AdminClient({"bootstrap.servers": kafka}).list_topics(timeout=10).cluster_id == "tansu_cluster"


@pytest.fixture
def admin(kafka: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": kafka})
