"""Real worker processes: SIGTERM drains and commits exactly what was handled; a member joining and one
leaving mid-stream lose nothing and handle nothing twice."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.support.processes import effects_worker
from tests.support.runtime import Setup, applied_topology, produce_orders
from tests.support.wait import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def handled(path: Path) -> list[tuple[str, int, int]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            rows.append((parts[0], int(parts[1]), int(parts[2])))
    return rows


def committed(setup: Setup, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": setup.kafka.bootstrap_servers, "group.id": setup.group})
    try:
        tps = consumer.committed([TopicPartition(setup.topic, p) for p in range(partitions)], timeout=10)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in tps}


def test_sigterm_drains_commits_what_was_handled_and_exits_zero(kafka: str, tmp_path: Path) -> None:
    setup = applied_topology(kafka, partitions=3)
    produce_orders(setup, 3000)
    effects = tmp_path / "handled.txt"
    worker = effects_worker(
        setup,
        tmp_path,
        "worker",
        KEP_TEST_PLAIN_EFFECTS=effects,
        KEP_TEST_HANDLER_MS=5,
        KEP_IDEMPOTENCY_STORE="memory://",
        KEP_DRAIN_TIMEOUT_S=10,
        KEP_MAX_IN_FLIGHT=300,
    ).start()
    wait_until(lambda: len(handled(effects)) >= 300, timeout=60, message="300 handled")
    assert worker.proc is not None
    code = worker.terminate(timeout=10 + 10)  # the drain deadline, plus leaving the group
    assert code == 0, worker.log()
    rows = handled(effects)
    assert len(rows) < 3000, "everything was handled before SIGTERM: the test proves nothing"
    per_partition: dict[int, list[int]] = {}
    for _, partition, offset in rows:
        per_partition.setdefault(partition, []).append(offset)
    expected = {p: max(offsets) + 1 for p, offsets in per_partition.items()}
    for p, offsets in per_partition.items():
        assert sorted(offsets) == list(range(len(offsets))), f"partition {p} handled a non-contiguous set"
    got = {p: o for p, o in committed(setup, 3).items() if o >= 0}
    assert got == expected


@pytest.mark.parametrize("strategy", ["cooperative-sticky", "range"])
def test_member_joining_and_leaving_mid_stream_loses_and_repeats_nothing(
    kafka: str, tmp_path: Path, strategy: str
) -> None:
    setup = applied_topology(kafka, partitions=6)
    events = produce_orders(setup, 6000)
    effects = tmp_path / "handled.txt"
    env = {
        "KEP_TEST_PLAIN_EFFECTS": effects,
        "KEP_TEST_HANDLER_MS": 15,
        "KEP_IDEMPOTENCY_STORE": f"sqlite:///{tmp_path}/idem.db",
        "KEP_ASSIGNMENT_STRATEGY": strategy,
    }
    first = effects_worker(setup, tmp_path, "first", **env).start()
    wait_until(lambda: len(handled(effects)) >= 500, timeout=60, message="first worker started")
    second = effects_worker(setup, tmp_path, "second", **env).start()
    wait_until(lambda: "partitions assigned" in second.log(), timeout=60, message="second worker assigned")
    progress = len(handled(effects))
    assert progress < len(events), "the stream ended before the join: the test proves nothing"
    assert first.terminate(timeout=40) == 0, first.log()
    assert len(handled(effects)) < len(events), "the stream ended before the leave: the test proves nothing"
    try:
        wait_until(lambda: len(handled(effects)) >= len(events), timeout=120, message="all handled")
    except AssertionError:
        print("SECOND LOG", second.log())
        raise
    assert second.terminate(timeout=40) == 0, second.log()
    counts = Counter(event_id for event_id, _, _ in handled(effects))
    assert set(counts) == {e.event_id for e in events}
    assert [k for k, n in counts.items() if n > 1] == []
