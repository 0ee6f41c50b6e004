"""Retries survive a crash, and dead letters replayed after a fix are handled exactly once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kep.cli.main import app as cli
from kep.consumers.dlq.replay import replay
from tests.support.kafka import read_records
from tests.support.processes import effects_worker
from tests.support.runtime import applied_topology, produce_orders
from tests.support.wait import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def effects(db: Path, table: str = "effects") -> tuple[int, int]:
    if not db.exists():
        return 0, 0
    conn = sqlite3.connect(db, timeout=30)
    try:
        row = conn.execute(f"SELECT count(*), count(DISTINCT event_id) FROM {table}").fetchone()
        return int(row[0]), int(row[1])
    except sqlite3.OperationalError:
        return 0, 0
    finally:
        conn.close()


def test_worker_killed_while_messages_wait_in_retry_tiers_loses_none(kafka: str, tmp_path: Path) -> None:
    setup = applied_topology(kafka, partitions=3, delays=(4,))
    events = produce_orders(setup, 200)
    db = tmp_path / "idem.db"
    worker = effects_worker(
        setup, tmp_path, "worker", KEP_TEST_FAIL_ATTEMPTS=1, KEP_IDEMPOTENCY_STORE=f"sqlite:///{db}"
    ).start()
    [tier] = setup.spec.retry_tiers(setup.topic)
    waiting = read_records(kafka, tier.topic, len(events), timeout=60)
    assert len(waiting) == len(events), "not every event reached the retry tier"
    assert effects(db)[1] == 0, "retries ran before their delay: the kill would prove nothing"
    worker.kill9()
    worker.start()
    wait_until(lambda: effects(db)[1] == len(events), timeout=90, interval=0.5, message="all retried")
    assert worker.terminate(30) == 0, worker.log()
    assert effects(db) == (len(events), len(events))


def test_replay_after_the_fix_handles_each_dead_letter_once_and_a_second_replay_nothing(
    kafka: str, tmp_path: Path
) -> None:
    setup = applied_topology(kafka, partitions=2, delays=(0.2,))
    events = produce_orders(setup, 50)
    db = tmp_path / "idem.db"
    store = f"sqlite:///{db}"
    broken = effects_worker(setup, tmp_path, "broken", KEP_TEST_FAIL_ATTEMPTS=99, KEP_IDEMPOTENCY_STORE=store)
    broken.start()
    dlq = setup.spec.dlq_topic(setup.topic)
    assert dlq is not None
    assert len(read_records(kafka, dlq, len(events), timeout=60)) == len(events)
    assert broken.terminate(30) == 0, broken.log()
    assert effects(db) == (0, 0)

    fixed = effects_worker(setup, tmp_path, "fixed", KEP_IDEMPOTENCY_STORE=store).start()
    runner = CliRunner()
    topology = tmp_path / "topology.yaml"  # written by effects_worker
    result = runner.invoke(cli, ["dlq", "replay", dlq, "-b", kafka, "--topology", str(topology)])
    assert result.exit_code == 0, result.output
    wait_until(lambda: effects(db)[1] == len(events), timeout=60, message="replayed events handled")
    again = replay(setup.kafka, dlq, topology=setup.topology)
    assert again.replayed == 0
    # give the worker the time it needed for the first replay before checking nothing ran twice
    wait_until(lambda: "partitions assigned" in fixed.log(), timeout=30, message="fixed worker up")
    assert fixed.terminate(30) == 0, fixed.log()
    assert effects(db) == (len(events), len(events))


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_retries_in_flight_move_with_their_partitions_when_the_group_rebalances(
    kafka: str, kafka_kind: str, tmp_path: Path, protocol: str
) -> None:
    """The group assigns a retry tier's partitions like any other; the worker's tier reader follows: it starts
    each at the group's committed offset and lets it go on revoke. A second worker joins and the first is
    killed with ``kill -9`` while retries wait in the tier: every event's effect is applied exactly once."""
    if protocol == "consumer" and kafka_kind == "embedded":
        pytest.skip("the embedded broker does not implement the KIP-848 consumer group protocol")
    setup = applied_topology(kafka, partitions=4, delays=(1,))
    events = produce_orders(setup, 400)
    db = tmp_path / "idem.db"
    env: dict[str, object] = {
        "KEP_TEST_FAIL_ATTEMPTS": 1,
        "KEP_TEST_HANDLER_MS": 5,
        "KEP_IDEMPOTENCY_STORE": f"sqlite:///{db}",
        "KEP_IDEMPOTENCY_LEASE_S": 5,
    }
    if protocol == "consumer":
        env |= {"KEP_GROUP_PROTOCOL": "consumer", "KEP_GROUP_REMOTE_ASSIGNOR": "uniform"}
    first = effects_worker(setup, tmp_path, "first", **env).start()
    second = effects_worker(setup, tmp_path, "second", **env)
    try:
        wait_until(lambda: effects(db)[1] > 0, timeout=60, message="the first retries succeeded")
        second.start()
        wait_until(
            lambda: effects(db)[1] >= len(events) // 3, timeout=90, interval=0.2, message="a third done"
        )
        assert effects(db)[1] < len(events), "all done before the kill: make the handler slower"
        first.kill9()
        wait_until(
            lambda: effects(db)[1] == len(events), timeout=120, interval=0.5, message="every event retried"
        )
    finally:
        first.terminate(30)
        code = second.terminate(30)
    assert code == 0, second.log()
    assert effects(db) == (len(events), len(events))
