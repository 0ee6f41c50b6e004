"""Static membership (``KEP_GROUP_INSTANCE_ID``) on Apache Kafka, with real worker processes: a member killed
and restarted under the same instance id gets its partitions back and the other member goes through no
rebalance; a member scaled down (SIGTERM: a static member does not leave the group) keeps its partitions
until the session timeout, then they move to the member left."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import WorkerProcess, effects_worker
from tests.support.runtime import Setup, applied_topology, produce_orders
from tests.support.wait import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PARTITIONS = 4
REBALANCE_EVENTS = ("partitions assigned", "partitions revoked", "partitions lost")


@pytest.fixture(autouse=True)
def _static_membership_works(kafka_kind: str) -> None:
    if kafka_kind == "embedded":
        pytest.skip(
            "static membership is broken on the embedded broker: a static member's partitions never move"
        )


def rebalances(worker: WorkerProcess) -> list[tuple[str, list[str]]]:
    """The worker's rebalance callbacks, in order: ``(event, partitions)`` from its JSON log."""
    out = []
    for line in worker.log_path.read_text(errors="replace").splitlines():
        try:
            entry: dict[str, Any] = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") in REBALANCE_EVENTS:
            out.append((str(entry["event"]), list(entry.get("partitions", []))))
    return out


def owned(worker: WorkerProcess) -> frozenset[str]:
    """The partitions the worker holds after its callbacks so far."""
    held: set[str] = set()
    for event, partitions in rebalances(worker):
        if event == "partitions assigned":
            held |= set(partitions)
        else:
            held -= set(partitions)
    return frozenset(held)


def handled(effects: Path) -> list[tuple[str, int]]:
    """``(event id, partition)`` of every handled event."""
    if not effects.exists():
        return []
    rows = [line.split() for line in effects.read_text().splitlines() if line.strip()]
    return [(row[0], int(row[1])) for row in rows]


def consume_a_batch(setup: Setup, effects: Path, n: int, seed: int) -> set[str]:
    """Produce ``n`` orders and wait until every one of them is handled (both members consume); their ids."""
    ids = {event.event_id for event in produce_orders(setup, n, seed=seed)}
    wait_until(
        lambda: ids <= {event_id for event_id, _ in handled(effects)},
        timeout=60,
        message=f"{n} events handled",
    )
    return ids


def static_worker(
    setup: Setup, tmp_path: Path, name: str, instance: str, effects: Path, **env: Any
) -> WorkerProcess:
    return effects_worker(
        setup,
        tmp_path,
        name,
        KEP_GROUP_INSTANCE_ID=instance,
        KEP_TEST_PLAIN_EFFECTS=effects,
        KEP_IDEMPOTENCY_STORE="memory://",
        **env,
    )


def split_between(a: WorkerProcess, b: WorkerProcess, every: frozenset[str]) -> bool:
    mine, theirs = owned(a), owned(b)
    return bool(mine) and bool(theirs) and mine | theirs == every and not mine & theirs


def test_a_restarted_static_member_gets_its_partitions_back_without_a_rebalance(
    kafka: str, tmp_path: Path
) -> None:
    setup = applied_topology(kafka, partitions=PARTITIONS)
    every = frozenset(f"{setup.topic}[{p}]" for p in range(PARTITIONS))
    effects = tmp_path / "effects.txt"
    slow_expiry = {"KEP_SESSION_TIMEOUT_MS": 30_000}  # far longer than a restart takes
    first = static_worker(setup, tmp_path, "first", "first", effects, **slow_expiry).start()
    wait_until(lambda: owned(first) == every, timeout=60, message="the first member holds every partition")
    second = static_worker(setup, tmp_path, "second", "second", effects, **slow_expiry).start()
    restarted: WorkerProcess | None = None
    try:
        wait_until(lambda: split_between(first, second, every), timeout=60, message="the partitions split")
        consume_a_batch(setup, effects, 100, seed=1)  # the join's rebalance is over
        theirs = owned(second)
        seen_by_first = rebalances(first)

        second.kill9()
        restarted = static_worker(setup, tmp_path, "second-again", "second", effects, **slow_expiry).start()
        wait_until(
            lambda: owned(restarted) == theirs, timeout=60, message="the restarted member's partitions"
        )
        after_restart = consume_a_batch(setup, effects, 100, seed=2)

        assert rebalances(first) == seen_by_first, "the other member went through a rebalance"
        assert owned(first) == every - theirs
        assert [(event, sorted(parts)) for event, parts in rebalances(restarted)] == [
            ("partitions assigned", sorted(theirs))
        ]
        partitions = {partition for event_id, partition in handled(effects) if event_id in after_restart}
        assert partitions == set(range(PARTITIONS))
    finally:
        codes = [w.terminate(60) for w in (first, restarted) if w is not None]
    assert codes == [0, 0], [first.log(), restarted.log() if restarted else ""]


def test_a_scaled_down_static_member_keeps_its_partitions_until_the_session_timeout(
    kafka: str, tmp_path: Path
) -> None:
    setup = applied_topology(kafka, partitions=PARTITIONS)
    every = frozenset(f"{setup.topic}[{p}]" for p in range(PARTITIONS))
    effects = tmp_path / "effects.txt"
    session_s = 6.0  # worker_env's KEP_SESSION_TIMEOUT_MS
    first = static_worker(setup, tmp_path, "first", "first", effects).start()
    wait_until(lambda: owned(first) == every, timeout=60, message="the first member holds every partition")
    second = static_worker(setup, tmp_path, "second", "second", effects).start()
    try:
        wait_until(lambda: split_between(first, second, every), timeout=60, message="the partitions split")
        consume_a_batch(setup, effects, 100, seed=1)

        assert second.terminate(60) == 0  # drains, commits, closes without leaving the group
        stopped = time.monotonic()
        wait_until(
            lambda: owned(first) == every, timeout=60, message="the partitions move to the member left"
        )
        moved_after = time.monotonic() - stopped

        # a dynamic member leaves the group on close and its partitions move within a heartbeat; a static one
        # keeps them for the session timeout (from its last heartbeat, at most a second before it closed)
        assert moved_after >= session_s - 2.0, f"moved {moved_after:.1f}s after the member stopped"
        consume_a_batch(setup, effects, 100, seed=2)
        assert {partition for _, partition in handled(effects)[-100:]} == set(range(PARTITIONS))
    finally:
        code = first.terminate(60)
        second.terminate(60)
    assert code == 0, first.log()
