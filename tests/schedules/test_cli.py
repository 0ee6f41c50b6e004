"""``kep schedules ls / trigger / pause / resume`` against a real ``kep run`` that runs the schedule itself: pause
stops the firings, resume starts them again (without firing what was due while paused), trigger fires now."""

from __future__ import annotations

import http.client
import json
import socket
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kep.cli.main import app
from tests.schedules.support import (
    NAME,
    ScheduleSetup,
    firing_times,
    handled,
    handler_worker,
    now,
    schedule_setup,
)
from tests.support.wait import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.embedded]
runner = CliRunner()


def kep(setup: ScheduleSetup, *args: str) -> Any:
    result = runner.invoke(
        app,
        ["schedules", *args, "--topology", str(setup.path), "-b", setup.kafka.bootstrap_servers, "--json"],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def fired_at(effects: Path, start: datetime) -> list[datetime]:
    """The times of the scheduled firings handled so far (manual triggers left out)."""
    times = firing_times(start - timedelta(seconds=5), now() + timedelta(seconds=5))
    return [times[i] for i in handled(effects) if i in times]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metrics(port: int) -> dict[str, float]:
    """The ``kep_schedule_*`` samples of ``/metrics``, by name and labels."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    samples = [line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("kep_schedule_")]
    return {name: float(value) for name, value in samples}


def test_ls_trigger_pause_and_resume(kafka: str, tmp_path: Path) -> None:
    setup = schedule_setup(kafka, tmp_path, missed="catch_up")
    worker, effects = handler_worker(setup, tmp_path, schedules=True)
    port = free_port()
    worker.env["KEP_METRICS_PORT"] = str(port)
    started = now()
    worker.start()
    try:
        wait_until(lambda: len(fired_at(effects, started)) >= 3, timeout=60, message="3 firings handled")

        fired = f'kep_schedule_firings_total{{schedule="{NAME}"}}'
        scraped = wait_until(
            lambda: (m := metrics(port)).get(fired, 0) >= 3 and m, timeout=10, message="3 firings on /metrics"
        )
        assert scraped["kep_schedule_leader"] == 1
        assert (
            scraped[f'kep_schedule_last_firing_timestamp_seconds{{schedule="{NAME}"}}'] > started.timestamp()
        )

        (row,) = kep(setup, "ls")["schedules"]
        assert (row["name"], row["cron"], row["timezone"], row["paused"]) == (
            NAME,
            "* * * * * *",
            "Europe/Paris",
            False,
        )
        assert row["last_firing"] is not None and row["next_firing"] > row["last_firing"]

        triggered = kep(setup, "trigger", NAME)["event_id"]
        assert triggered not in firing_times(started, now() + timedelta(seconds=5))  # an id of its own
        wait_until(lambda: triggered in handled(effects), timeout=30, message="the triggered event handled")

        assert kep(setup, "pause", NAME) == {"schedule": NAME, "paused": True}
        paused = now()
        (row,) = kep(setup, "ls")["schedules"]
        assert row["paused"] is True and row["next_firing"] is None
        quiet_until = paused + timedelta(seconds=6)
        wait_until(
            lambda: now() >= quiet_until, timeout=10, message="a paused while"
        )  # nothing may fire meanwhile
        late = [at for at in fired_at(effects, started) if at > paused + timedelta(seconds=1)]
        assert late == [], f"fired while paused: {late}"

        resumed = now()  # the resume record's time is after this one
        assert kep(setup, "resume", NAME) == {"schedule": NAME, "paused": False}
        wait_until(
            lambda: sum(at > resumed for at in fired_at(effects, started)) >= 2,
            timeout=30,
            message="firings after resume",
        )
        during = [at for at in fired_at(effects, started) if paused + timedelta(seconds=1) < at < resumed]
        assert during == [], f"the paused firings were caught up: {during}"
        (row,) = kep(setup, "ls")["schedules"]
        assert row["paused"] is False and row["next_firing"] is not None
    finally:
        code = worker.terminate(60)
    ids = handled(effects)
    assert len(ids) == len(set(ids)), "an event was handled twice"
    assert code == 0, worker.log()


def test_an_unknown_schedule_and_a_missing_state_topic_are_named(kafka: str, tmp_path: Path) -> None:
    setup = schedule_setup(kafka, tmp_path)
    result = runner.invoke(app, ["schedules", "pause", "nope", "--topology", str(setup.path), "-b", kafka])
    assert result.exit_code == 2
    assert "unknown schedule 'nope' (declared schedules: tick)" in result.output
    unapplied = tmp_path / "unapplied.yaml"
    unapplied.write_text(setup.path.read_text().replace(setup.state_topic, setup.state_topic + "-none"))
    for command in (["ls"], ["pause", NAME], ["run"]):
        result = runner.invoke(app, ["schedules", *command, "--topology", str(unapplied), "-b", kafka])
        assert result.exit_code == 1, result.output
        assert (
            f"state topic '{setup.state_topic}-none' does not exist: run 'kep topology apply'"
            in result.output
        )
