"""One leader among scheduler replicas, seen on their ``/metrics``: a stopped leader hands over to another."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.schedules.support import SchedulerProcess, schedule_setup, scheduler
from tests.schedules.test_cli import free_port, metrics
from tests.support.wait import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.embedded]


def leaders(replicas: list[tuple[SchedulerProcess, int]]) -> list[float]:
    found = []
    for process, port in replicas:
        try:
            found.append(metrics(port).get("kep_schedule_leader", -1.0) if process.alive else 0.0)
        except OSError:  # not serving yet
            found.append(-1.0)
    return found


def test_one_replica_leads_and_a_stopped_leader_hands_over(kafka: str, tmp_path: Path) -> None:
    setup = schedule_setup(kafka, tmp_path)
    replicas = []
    for number in range(2):
        process, port = scheduler(setup, tmp_path, f"scheduler-{number}"), free_port()
        process.args += ["--metrics-port", str(port)]
        replicas.append((process.start(), port))
    try:
        wait_until(lambda: sorted(leaders(replicas)) == [0.0, 1.0], timeout=60, message="one leader of two")
        leader = leaders(replicas).index(1.0)
        assert replicas[leader][0].terminate(30) == 0
        other = replicas[1 - leader]
        wait_until(lambda: leaders([other]) == [1.0], timeout=30, message="the other replica leads")
    finally:
        codes = [process.terminate(30) for process, _ in replicas]
    assert codes == [0, 0], [process.log() for process, _ in replicas]
