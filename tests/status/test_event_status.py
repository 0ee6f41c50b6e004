"""Event status end to end: events posted to the intake, handled by a ``kep run`` worker (one retried, one
dead-lettered), their states read back over HTTP (``GET /events/{id}``) and with ``kep status``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from kep.consumers.status import StatusView, open_status_store
from tests.ingest.support import ORDER_PATH, order, running_intake
from tests.status.support import app_env, batch_setup
from tests.support.processes import ROOT, WorkerProcess, worker_env, write_topology
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_states_are_recorded_and_served(kafka: str, tmp_path: Path) -> None:
    setup, _ = batch_setup(kafka, delays=("200ms",))
    url = f"sqlite:///{tmp_path / 'idem.db'}"
    topology = write_topology(setup.topology, tmp_path / "topology.yaml")
    env = worker_env(
        KEP_IDEMPOTENCY_STORE=url,
        **app_env(setup, KEP_TEST_FAIL_FIRST="o-retry", KEP_TEST_FAIL_ALWAYS="o-bad"),
    )
    worker = WorkerProcess(
        "tests.apps.batches:app", ["--topology", str(topology), "-b", kafka], env, tmp_path / "worker.log"
    ).start()
    view = StatusView(open_status_store(url))
    try:
        with (
            running_intake(setup.topology, setup.kafka, status=view) as server,
            httpx.Client(base_url=server.url) as client,
        ):
            for key, order_id in (("evt-ok", "o-ok"), ("evt-retry", "o-retry"), ("evt/bad", "o-bad")):
                response = client.post(
                    ORDER_PATH, json=order(order_id=order_id), headers={"Idempotency-Key": key}
                )
                assert response.status_code == 202, response.text

            def state(event_id: str) -> str | None:
                found = view.event_status(event_id)
                return None if found is None else found["groups"][setup.group]["state"]

            wait_until(lambda: state("evt-ok") == "handled", timeout=60, message="evt-ok handled")
            wait_until(lambda: state("evt-retry") == "handled", timeout=60, message="evt-retry handled")
            wait_until(
                lambda: state("evt/bad") == "dead_lettered", timeout=60, message="evt/bad dead-lettered"
            )
            retried = client.get("/events/evt-retry").json()["groups"][setup.group]
            bad = client.get(server.url + "/events/" + "evt%2Fbad").json()["groups"][setup.group]
            missing = client.get("/events/nobody")
        assert (retried["state"], retried["attempt"], retried["topic"]) == ("handled", 2, setup.topic)
        assert bad["exception_type"] == "tests.apps.batches.PermanentError"
        assert bad["reason"] == "fatal"
        assert missing.status_code == 404 and missing.json()["error"] == "unknown_event"
    finally:
        view.close()
        assert worker.terminate(60) == 0, worker.log()
    shown = subprocess.run(
        [sys.executable, "-m", "kep.cli.main", "status", "evt/bad", "--store", url, "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert '"dead_lettered"' in shown.stdout and "PermanentError" in shown.stdout
    table = subprocess.run(
        [sys.executable, "-m", "kep.cli.main", "status", "evt-retry", "--store", url],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert table.returncode == 0 and "handled" in table.stdout and setup.group in table.stdout
    unknown = subprocess.run(
        [sys.executable, "-m", "kep.cli.main", "status", "nope", "--store", url],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert unknown.returncode == 1 and "no status for event 'nope'" in unknown.stderr
