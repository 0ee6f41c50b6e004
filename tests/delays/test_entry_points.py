"""Delaying an event from each entry point: ``EventProducer.publish``, ``kep produce`` and the intake."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from kep.cli.main import app
from kep.producers import EventProducer, InvalidDelayError
from kep.producers import headers as h
from shop.samples import sample_events
from tests.delays._support import DelaySetup, delay_setup
from tests.ingest.support import ORDER_PATH, order, running_intake
from tests.support.kafka import read_topic
from tests.support.processes import write_topology

pytestmark = pytest.mark.integration
runner = CliRunner()


@pytest.fixture
def setup(kafka: str, tmp_path: Path) -> DelaySetup:
    return delay_setup(kafka, tmp_path, tiers=("1s", "30s", "10m"), partitions=1, tier_partitions=1)


def _tier(setup: DelaySetup, suffix: str) -> str:
    return f"{setup.delays.prefix}.{suffix}"


def test_publish_sends_a_delayed_event_to_its_tier_with_destination_and_due_time(setup: DelaySetup) -> None:
    event = sample_events(1, seed=1, kind="orders")[0]
    before = time.time_ns() // 1_000_000
    with EventProducer(setup.kafka, setup.topology) as producer:
        delayed = producer.publish_and_wait(event, topic=setup.topic, delay=timedelta(seconds=45))
        at_once = producer.publish_and_wait(
            event, topic=setup.topic, deliver_at=datetime.now(UTC) - timedelta(seconds=1)
        )
        with pytest.raises(InvalidDelayError, match="not both"):
            producer.publish(event, topic=setup.topic, delay=5, deliver_at=datetime.now(UTC))
    assert delayed.topic == _tier(setup, "30s")
    assert at_once.topic == setup.topic
    [record] = read_topic(setup.kafka.bootstrap_servers, delayed.topic, expected=1)
    assert h.header_str(record.headers(), h.DELAY_TOPIC) == setup.topic
    due = h.header_int(record.headers(), h.DELAY_DUE)
    assert due is not None and before + 45_000 <= due <= time.time_ns() // 1_000_000 + 45_000
    assert h.header_str(record.headers(), h.IDEMPOTENCY_KEY) == event.event_id
    assert record.key() == event.order_id.encode()  # type: ignore[attr-defined]


def test_a_topology_without_delays_refuses_a_delayed_publish(setup: DelaySetup) -> None:
    plain = setup.topology.model_copy(update={"delays": None})
    event = sample_events(1, seed=1, kind="orders")[0]
    with EventProducer(setup.kafka, plain) as producer, pytest.raises(InvalidDelayError, match="no delays"):
        producer.publish(event, topic=setup.topic, delay=60)


def test_kep_produce_delay_and_deliver_at(setup: DelaySetup, tmp_path: Path) -> None:
    topology = str(write_topology(setup.topology, tmp_path / "topology.yaml"))
    base = ["produce", setup.topic, "-n", "3", "-b", setup.kafka.bootstrap_servers, "--topology", topology]
    result = runner.invoke(app, [*base, "--delay", "10m", "--json"])
    assert result.exit_code == 0, result.output
    read_topic(setup.kafka.bootstrap_servers, _tier(setup, "10m"), expected=3)
    later = (datetime.now(UTC) + timedelta(seconds=40)).isoformat()
    result = runner.invoke(app, [*base, "--deliver-at", later, "--json"])
    assert result.exit_code == 0, result.output
    read_topic(setup.kafka.bootstrap_servers, _tier(setup, "30s"), expected=3)
    for bad, says in (
        (["--delay", "10"], "--delay"),
        (["--deliver-at", "2030-01-01T09:00:00"], "no time zone"),
        (["--deliver-at", "tomorrow"], "ISO 8601"),
        (["--delay", "1m", "--deliver-at", later], "not both"),
    ):
        result = runner.invoke(app, [*base, *bad])
        trace = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else ""
        assert result.exit_code == 2 and says in result.output, (bad, result.output, trace)


def test_the_intake_takes_delay_and_deliver_at_and_documents_them(setup: DelaySetup) -> None:
    with running_intake(setup.topology, setup.kafka) as server, httpx.Client(base_url=server.url) as client:
        delayed = client.post(
            ORDER_PATH, params={"delay": "45s"}, json=order(), headers={"Idempotency-Key": "d-1"}
        )
        past = client.post(
            ORDER_PATH,
            params={"deliver_at": "2020-01-01T00:00:00Z"},
            json=order(),
            headers={"Idempotency-Key": "d-2"},
        )
        bad = [
            client.post(ORDER_PATH, params=params, json=order())
            for params in (
                {"delay": "soon"},
                {"deliver_at": "2030-01-01T00:00:00"},
                {"delay": "1s", "deliver_at": "x"},
            )
        ]
        too_far = client.post(ORDER_PATH, params={"delay": "400d"}, json=order())
        spec = client.get("/openapi.json").json()
    assert delayed.status_code == 202, delayed.text
    assert delayed.json()["topic"] == _tier(setup, "30s")
    assert past.status_code == 202 and past.json()["topic"] == setup.topic
    assert [r.status_code for r in bad] == [400, 400, 400]
    assert {r.json()["error"] for r in bad} == {"bad_delay"}
    assert too_far.status_code == 422 and "max_delay" in too_far.json()["message"]
    [record] = read_topic(setup.kafka.bootstrap_servers, _tier(setup, "30s"), expected=1)
    assert h.header_str(record.headers(), h.IDEMPOTENCY_KEY) == "d-1"
    names = {p["name"] for p in spec["paths"][ORDER_PATH]["post"]["parameters"]}
    assert {"delay", "deliver_at"} <= names


def test_kep_delays_run_forwards_on_its_own_and_stops_on_sigterm(setup: DelaySetup, tmp_path: Path) -> None:
    topology = write_topology(setup.topology, tmp_path / "topology.yaml")
    env = dict(os.environ)
    args = ["delays", "run", "--topology", str(topology), "-b", setup.kafka.bootstrap_servers]
    log = tmp_path / "delays.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kep.cli.main", *args], env=env, stdout=out, stderr=out
        )
    try:
        event = sample_events(1, seed=4, kind="orders")[0]
        with EventProducer(setup.kafka, setup.topology) as producer:
            assert producer.publish_and_wait(event, topic=setup.topic, delay=1.5).topic == _tier(setup, "1s")
        [record] = read_topic(setup.kafka.bootstrap_servers, setup.topic, expected=1, timeout=60)
        assert h.header_str(record.headers(), h.IDEMPOTENCY_KEY) == event.event_id
        assert h.header_bytes(record.headers(), h.DELAY_DUE) is None
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    assert code == 0, log.read_text()
