"""Batches: once every member is handled or dead-lettered in a group, exactly one BatchCompleted, also when
first attempts fail, when a member fails for good (and is replayed after a fix), and when a worker is killed
with SIGKILL mid-batch."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from kep.consumers.dlq import replay
from kep.schemas.batches import BatchCompleted, batch_completed_id
from kep.schemas.codec import codec_for
from tests.ingest.support import running_intake
from tests.status.support import app_env, batch_setup, orders, publish_batch, status_view
from tests.support.kafka import read_topic
from tests.support.processes import WorkerProcess, worker_env, write_topology
from tests.support.runtime import Setup
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SIZE = 500


def _worker(setup: Setup, tmp_path: Path, name: str, url: str, **env: object) -> WorkerProcess:
    topology = write_topology(setup.topology, tmp_path / "topology.yaml")
    full = worker_env(KEP_IDEMPOTENCY_STORE=url, KEP_IDEMPOTENCY_LEASE_S=5, **app_env(setup, **env))
    args = ["--topology", str(topology), "-b", setup.kafka.bootstrap_servers]
    return WorkerProcess("tests.apps.batches:app", args, full, tmp_path / f"{name}.log")


def _progress(url: str, batch_id: str, group: str) -> dict[str, object] | None:
    with status_view(url) as view:
        found = view.batch_status(batch_id)
    return None if found is None else found["groups"].get(group)


def _announced(url: str, batch_id: str, group: str) -> dict[str, object] | None:
    progress = _progress(url, batch_id, group)
    return progress if progress and progress["completed_event_published"] else None


def _completed(setup: Setup, done_topic: str) -> list[BatchCompleted]:
    codec = codec_for()
    records = read_topic(setup.kafka.bootstrap_servers, done_topic, expected=1)
    events = [codec.decode(r.value()) for r in records]  # type: ignore[arg-type]
    assert all(isinstance(e, BatchCompleted) for e in events)
    return events  # type: ignore[return-value]


def test_2_percent_of_first_attempts_failing_still_gives_exactly_one_batch_completed(
    kafka: str, tmp_path: Path
) -> None:
    setup, done = batch_setup(kafka, partitions=3)
    url = f"sqlite:///{tmp_path / 'idem.db'}"
    events = orders(SIZE)
    flaky = ",".join(e.order_id for e in events[::50])  # 10 of 500
    worker = _worker(setup, tmp_path, "worker", url, KEP_TEST_FAIL_FIRST=flaky).start()
    try:
        publish_batch(setup, events, "batch-flaky")
        progress = wait_until(
            lambda: _announced(url, "batch-flaky", setup.group), timeout=120, message="announced"
        )
    finally:
        assert worker.terminate(60) == 0, worker.log()
    assert (progress["handled"], progress["dead_lettered"], progress["state"]) == (SIZE, 0, "completed")
    [completed] = _completed(setup, done)
    assert (completed.batch_id, completed.group, completed.total) == ("batch-flaky", setup.group, SIZE)
    assert (completed.handled, completed.dead_lettered, completed.dead_lettered_ids) == (SIZE, 0, [])
    assert completed.event_id == batch_completed_id(setup.group, "batch-flaky")


def test_a_member_failing_for_good_reads_499_and_1_and_its_replay_completes_the_batch(
    kafka: str, tmp_path: Path
) -> None:
    setup, done = batch_setup(kafka, partitions=3)
    url = f"sqlite:///{tmp_path / 'idem.db'}"
    events = orders(SIZE)
    broken = events[123]
    fixed = tmp_path / "fixed"
    worker = _worker(
        setup, tmp_path, "worker", url, KEP_TEST_FAIL_ALWAYS=broken.order_id, KEP_TEST_FIXED=fixed
    )
    worker.start()
    try:
        publish_batch(setup, events, "batch-broken")
        progress = wait_until(
            lambda: _announced(url, "batch-broken", setup.group), timeout=120, message="announced"
        )
        assert (progress["handled"], progress["dead_lettered"]) == (499, 1)
        assert progress["state"] == "completed_with_dead_letters"
        assert progress["dead_lettered_ids"] == [broken.event_id]
        [completed] = _completed(setup, done)
        assert (completed.handled, completed.dead_lettered, completed.dead_lettered_ids) == (
            499,
            1,
            [broken.event_id],
        )

        with running_intake(setup.topology, setup.kafka, status_store=url) as server:
            shown = httpx.get(f"{server.url}/batches/batch-broken").json()["groups"][setup.group]
        assert (shown["handled"], shown["dead_lettered"], shown["pending"]) == (499, 1, 0)

        fixed.touch()
        result = replay(setup.kafka, setup.spec.dlq_topic(setup.topic) or "", topology=setup.topology)
        assert result.replayed == 1, result.reasons

        def completed_after_replay() -> dict[str, object] | None:
            p = _progress(url, "batch-broken", setup.group)
            return p if p and p["state"] == "completed" else None

        progress = wait_until(completed_after_replay, timeout=60, message="batch completed after the replay")
        assert (progress["handled"], progress["dead_lettered"]) == (SIZE, 0)

        def member_state() -> str | None:
            with status_view(url) as view:
                member = view.event_status(broken.event_id)
            return None if member is None else str(member["groups"][setup.group]["state"])

        wait_until(lambda: member_state() == "handled", timeout=30, message="the replayed member handled")
    finally:
        assert worker.terminate(60) == 0, worker.log()
    assert len(_completed(setup, done)) == 1  # the replay updated the status; no second BatchCompleted


def test_a_worker_killed_with_sigkill_mid_batch_still_gives_exactly_one_batch_completed(
    kafka: str, tmp_path: Path
) -> None:
    setup, done = batch_setup(kafka, partitions=6)
    url = f"sqlite:///{tmp_path / 'idem.db'}"
    events = orders(SIZE)
    flaky = ",".join(e.order_id for e in events[::50])
    workers = [
        _worker(
            setup, tmp_path, f"worker-{i}", url, KEP_TEST_FAIL_FIRST=flaky, KEP_TEST_HANDLER_MS=20
        ).start()
        for i in range(2)
    ]
    try:
        publish_batch(setup, events, "batch-killed")

        def some_handled() -> bool:
            progress = _progress(url, "batch-killed", setup.group)
            return bool(progress and 100 <= int(progress["handled"]) < SIZE)  # type: ignore[call-overload]

        wait_until(some_handled, timeout=120, message="a part of the batch handled")
        workers[0].kill9()
        workers[0].start()
        progress = wait_until(
            lambda: _announced(url, "batch-killed", setup.group), timeout=180, message="announced"
        )
    finally:
        codes = [w.terminate(60) for w in workers]
    assert codes == [0, 0], [w.log() for w in workers]
    assert (progress["handled"], progress["dead_lettered"]) == (SIZE, 0)
    [completed] = _completed(setup, done)
    assert (completed.total, completed.handled) == (SIZE, SIZE)
