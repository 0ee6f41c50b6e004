"""``kep run`` on two worker processes (``KEP_PROCESSES=2``) against a real broker: the processes share the
group's partitions and the SQLite store; one killed with SIGKILL is restarted by the supervisor and every
event's side effect still exists exactly once; the supervisor serves every process's metrics with a
``process`` label; SIGTERM drains both; a supervisor killed with SIGKILL takes its processes with it; a process
that cannot start (an unreachable store) stops ``kep run`` with an error."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import sqlite3
import uuid
from pathlib import Path

import pytest

from tests.support.processes import effects_worker
from tests.support.runtime import applied_topology, produce_orders
from tests.support.wait import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.integration]

EVENTS = 6_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    except OSError as exc:
        return 0, str(exc)
    finally:
        conn.close()


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state == "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_two_processes_share_the_group_and_a_killed_one_is_restarted_without_loss_or_double_effects(
    kafka: str, tmp_path: Path
) -> None:
    setup = applied_topology(kafka, partitions=6)
    produce_orders(setup, EVENTS)
    db = tmp_path / "idem.db"
    effects = f"effects_{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {
        "KEP_PROCESSES": 2,
        "KEP_TEST_EFFECTS": effects,
        "KEP_TEST_HANDLER_MS": 2,
        "KEP_IDEMPOTENCY_STORE": f"sqlite:///{db}",
        "KEP_IDEMPOTENCY_LEASE_S": 5,
        "KEP_METRICS_PORT": port,
        "KEP_METRICS_HOST": "127.0.0.1",
    }
    worker = effects_worker(setup, tmp_path, "supervisor", **env).start()
    assert worker.proc is not None

    def count() -> int:
        conn = sqlite3.connect(db, timeout=30)
        try:
            return int(conn.execute(f"SELECT count(DISTINCT event_id) FROM {effects}").fetchone()[0])
        except sqlite3.OperationalError:  # no event handled yet
            return 0
        finally:
            conn.close()

    def handled_by() -> set[int]:
        conn = sqlite3.connect(db, timeout=30)
        try:
            return {pid for (pid,) in conn.execute(f"SELECT DISTINCT pid FROM {effects}")}
        except sqlite3.OperationalError:  # no event handled yet
            return set()
        finally:
            conn.close()

    try:
        wait_until(lambda: get(port, "/readyz")[0] == 200, timeout=90, message=f"ready\n{worker.log()}")
        status, text = get(port, "/metrics")
        assert status == 200
        assert "kep_worker_processes 2.0" in text
        assigned = [
            line for line in text.splitlines() if line.startswith("kep_consumer_assigned_partitions{")
        ]
        for index in ("0", "1"):  # each process's own series, told apart by a label
            assert any(f'process="{index}"' in line for line in assigned), text
        wait_until(lambda: len(handled_by()) == 2, timeout=60, message="events handled by both processes")
        before = children(worker.proc.pid)
        os.kill(before[0], signal.SIGKILL)
        wait_until(
            lambda: "kep_worker_process_restarts_total{process=" in get(port, "/metrics")[1],
            timeout=30,
            message="restart counted",
        )
        wait_until(
            lambda: len(set(children(worker.proc.pid)) - set(before)) == 1,  # type: ignore[union-attr]
            timeout=30,
            message="a new worker process in the killed one's place",
        )
        wait_until(lambda: count() >= EVENTS, timeout=180, interval=0.5, message=f"{EVENTS} effects")
        wait_until(lambda: get(port, "/readyz")[0] == 200, timeout=60, message="both processes ready again")
    finally:
        code = worker.terminate(90)
    conn = sqlite3.connect(db, timeout=30)
    rows, distinct = conn.execute(f"SELECT count(*), count(DISTINCT event_id) FROM {effects}").fetchone()
    conn.close()
    assert distinct == EVENTS, "some events were never handled"
    assert rows == EVENTS, f"{rows - EVENTS} side effects were applied twice"
    lines = worker.log_path.read_text(errors="replace")
    assert '"process":0' in lines and '"process":1' in lines, "each line names its worker process"
    assert code == 0, worker.log()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_a_supervisor_killed_with_sigkill_takes_its_processes_with_it(kafka: str, tmp_path: Path) -> None:
    setup = applied_topology(kafka, partitions=2)
    worker = effects_worker(setup, tmp_path, "supervisor", KEP_PROCESSES=2).start()
    assert worker.proc is not None
    pids = wait_until(
        lambda: (found := children(worker.proc.pid)) and len(found) == 2 and found,  # type: ignore[union-attr]
        timeout=60,
        message="two worker processes",
    )
    wait_until(lambda: "partitions assigned" in worker.log(), timeout=90, message="joined")
    worker.kill9()
    wait_until(lambda: all(gone(pid) for pid in pids), timeout=90, message="worker processes gone")


def test_a_process_that_cannot_start_stops_kep_run_with_the_reason(kafka: str, tmp_path: Path) -> None:
    setup = applied_topology(kafka, partitions=2)
    worker = effects_worker(
        setup, tmp_path, "supervisor", KEP_PROCESSES=2, KEP_IDEMPOTENCY_STORE="redis://127.0.0.1:1/0"
    ).start()
    assert worker.proc is not None
    code = worker.proc.wait(90)
    assert code != 0
    log = worker.log()
    assert "127.0.0.1:1" in log and "worker process failed before it was up" in log
