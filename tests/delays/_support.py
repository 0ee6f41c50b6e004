"""A shop topology with a ``delays:`` section, its ``kep run tests.apps.delayed:app`` workers, and what they
handled (read from the SQLite store the workers share)."""

from __future__ import annotations

import sqlite3
import statistics
from dataclasses import dataclass
from pathlib import Path

from kep.topology import ConsumerGroupSpec, DelaySpec, KafkaSettings, TopicSpec, Topology, admin
from tests.support.kafka import unique
from tests.support.processes import WorkerProcess, worker_env, write_topology


@dataclass(frozen=True)
class DelaySetup:
    kafka: KafkaSettings
    topology: Topology
    topic: str
    group: str
    db: Path
    table: str

    @property
    def delays(self) -> DelaySpec:
        assert self.topology.delays is not None
        return self.topology.delays

    def worker(self, tmp_path: Path, name: str) -> WorkerProcess:
        path = write_topology(self.topology, tmp_path / "topology.yaml")
        args = ["--topology", str(path), "-b", self.kafka.bootstrap_servers]
        env = worker_env(
            KEP_TEST_TOPIC=self.topic,
            KEP_TEST_GROUP=self.group,
            KEP_TEST_EFFECTS=self.table,
            KEP_IDEMPOTENCY_STORE=f"sqlite:///{self.db}",
            KEP_IDEMPOTENCY_LEASE_S=5,
        )
        return WorkerProcess("tests.apps.delayed:app", args, env, tmp_path / f"{name}.log")

    def handled(self) -> list[tuple[str, int]]:
        """Every ``(event_id, handled_ms)`` row, one per handling."""
        conn = sqlite3.connect(self.db, timeout=30)
        try:
            return [
                (str(a), int(b)) for a, b in conn.execute(f"SELECT event_id, handled_ms FROM {self.table}")
            ]
        except sqlite3.OperationalError:  # no worker handled anything yet
            return []
        finally:
            conn.close()

    def distinct(self) -> int:
        return len({event_id for event_id, _ in self.handled()})


def delay_setup(
    bootstrap: str, tmp_path: Path, *, tiers: tuple[str, ...], partitions: int = 3, tier_partitions: int = 2
) -> DelaySetup:
    topic, group = unique("orders"), unique("grp")
    topology = Topology(
        topics=(
            TopicSpec(
                name=topic, partitions=partitions, value_schema="kep.orders.OrderPlaced", key_field="order_id"
            ),
        ),
        groups=(ConsumerGroupSpec(name=group, topics=(topic,)),),
        delays=DelaySpec.model_validate(
            {
                "tiers": tiers,
                "prefix": unique("delay"),
                "partitions": tier_partitions,
                "group": unique("delays"),
            }
        ),
    )
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    admin.apply(admin.plan(topology, kafka), kafka)
    return DelaySetup(
        kafka, topology, topic, group, tmp_path / "idem.db", unique("handled").replace("-", "_")
    )


def lateness_report(label: str, lateness_ms: list[int]) -> str:
    ordered = sorted(lateness_ms)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{label}: {len(ordered)} events, lateness p50 {statistics.median(ordered):.0f} ms, "
        f"p99 {p99} ms, max {ordered[-1]} ms"
    )
