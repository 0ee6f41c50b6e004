"""The KIP-848 consumer group protocol (``KEP_GROUP_PROTOCOL=consumer``) with real worker processes on Kafka 4.x:
the workers join a group the broker runs as a consumer group, one is killed with SIGKILL and restarted, and
every event's side effect exists exactly once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from confluent_kafka import ConsumerGroupType
from confluent_kafka.admin import AdminClient

from kep.consumers.lag import GroupLag, LagMonitor
from tests.support.processes import effects_worker
from tests.support.runtime import applied_topology, produce_orders
from tests.support.wait import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.integration]

EVENTS = 3000
PARTITIONS = 4


@pytest.fixture(autouse=True)
def _kafka_4(kafka_kind: str) -> None:
    if kafka_kind == "embedded":
        pytest.skip("the embedded broker does not implement the KIP-848 consumer group protocol")


def effects(db: Path, table: str) -> tuple[int, int, int]:
    """(rows, distinct event ids, distinct worker pids) of the side-effect table."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        row = conn.execute(
            f"SELECT count(*), count(DISTINCT event_id), count(DISTINCT pid) FROM {table}"
        ).fetchone()
        return int(row[0]), int(row[1]), int(row[2])
    except sqlite3.OperationalError:  # no worker created the table yet
        return 0, 0, 0
    finally:
        conn.close()


def group_type_and_members(admin: AdminClient, group: str) -> tuple[ConsumerGroupType, int] | None:
    try:
        description = admin.describe_consumer_groups([group])[group].result(10)
    except Exception:  # noqa: BLE001 - the coordinator is not known yet: ask again
        return None
    return description.type, len(description.members)


def test_kill9_of_a_consumer_protocol_member_loses_nothing_and_applies_each_effect_once(
    kafka: str, tmp_path: Path
) -> None:
    setup = applied_topology(kafka, partitions=PARTITIONS)
    produce_orders(setup, EVENTS)
    db = tmp_path / "idem.db"
    env = {
        "KEP_GROUP_PROTOCOL": "consumer",
        "KEP_GROUP_REMOTE_ASSIGNOR": "uniform",
        "KEP_TEST_EFFECTS": "effects",
        "KEP_TEST_HANDLER_MS": 3,
        "KEP_IDEMPOTENCY_STORE": f"sqlite:///{db}",
        "KEP_IDEMPOTENCY_LEASE_S": 5,
    }
    workers = [effects_worker(setup, tmp_path, f"worker-{i}", **env).start() for i in range(2)]
    try:
        admin = AdminClient({"bootstrap.servers": kafka})  # kept alive while its futures run
        wait_until(
            lambda: group_type_and_members(admin, setup.group) == (ConsumerGroupType.CONSUMER, 2),
            timeout=60,
            message="both workers in a consumer-protocol group",
        )
        wait_until(lambda: effects(db, "effects")[2] == 2, timeout=60, message="both workers handling events")
        done_before_kill = effects(db, "effects")[1]
        assert done_before_kill < EVENTS, "the stream finished before the kill: make the handler slower"
        workers[0].kill9()
        workers[0].start()  # the same member comes back; the broker reassigns without a classic rebalance
        wait_until(
            lambda: effects(db, "effects")[1] >= EVENTS, timeout=180, interval=0.5, message="all effects"
        )
        with LagMonitor(setup.kafka, group_filter=setup.group) as monitor:  # the exporter sees such groups

            def caught_up() -> GroupLag | None:
                group = monitor.poll().groups[0]
                return group if group.lag_messages == 0 and group.members == 2 else None

            group = wait_until(caught_up, timeout=30, interval=0.5, message="the lag monitor sees no lag")
        assert group.state == "STABLE" and len(group.partitions) == PARTITIONS
    finally:
        codes = [w.terminate(60) for w in workers]
    rows, distinct, pids = effects(db, "effects")
    assert distinct == EVENTS, "some events were never handled"
    assert rows == EVENTS, f"{rows - EVENTS} side effects were applied twice"
    assert pids >= 2
    assert codes == [0, 0], [w.log() for w in workers]
    assert "session.timeout.ms" not in workers[1].log()
