"""``kep delays ls``: what waits in the delay tiers, soonest due first, read from the forwarder's committed
offsets; a record with headers kep did not write is listed as unreadable, and hostile keys are shown escaped."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from typer.testing import CliRunner

from kep.cli.main import app
from kep.producers import EventProducer
from kep.producers import headers as h
from shop.samples import sample_events
from tests.delays._support import DelaySetup, delay_setup
from tests.support.processes import write_topology

pytestmark = [pytest.mark.integration, pytest.mark.embedded]
runner = CliRunner()


@pytest.fixture
def setup(kafka: str, tmp_path: Path) -> DelaySetup:
    return delay_setup(kafka, tmp_path, tiers=("1s", "30s", "10m"), partitions=1, tier_partitions=1)


def _ls(setup: DelaySetup, tmp_path: Path, *extra: str) -> tuple[int, str]:
    topology = str(write_topology(setup.topology, tmp_path / "topology.yaml"))
    args = ["delays", "ls", "-b", setup.kafka.bootstrap_servers, "--topology", topology, *extra]
    result = runner.invoke(app, args)
    return result.exit_code, result.output


def test_kep_delays_ls_lists_what_waits_soonest_first_from_the_committed_offsets(
    setup: DelaySetup, tmp_path: Path
) -> None:
    events = sample_events(3, seed=7, kind="orders")
    before = time.time_ns() // 1_000_000
    with EventProducer(setup.kafka, setup.topology) as producer:
        for event, delay in zip(events, (1200, 45, 300), strict=True):  # 20 min, 45 s, 5 min
            producer.publish_and_wait(event, topic=setup.topic, delay=timedelta(seconds=delay))
    tier_30s = f"{setup.delays.prefix}.30s"
    hostile = Producer({"bootstrap.servers": setup.kafka.bootstrap_servers})
    hostile.produce(
        tier_30s,
        b"not avro",
        b"k-[/]\x1b[31m",
        headers=[(h.DELAY_TOPIC, setup.topic.encode()), (h.DELAY_DUE, b"--1")],
    )
    assert hostile.flush(10) == 0
    del hostile

    code, output = _ls(setup, tmp_path, "--json")
    assert code == 0, output
    listed = json.loads(output)
    assert listed["count"] == 4 and listed["unreadable"] == 1
    assert listed["by_destination"] == {setup.topic: 3}
    soonest = listed["soonest"]
    assert soonest[0]["due_ms"] is None and "--1" in soonest[0]["problem"]  # unreadable: dead-lettered next
    assert [r["event_id"] for r in soonest[1:]] == [
        events[1].event_id,
        events[2].event_id,
        events[0].event_id,
    ]
    assert all(r["destination"] == setup.topic for r in soonest[1:])
    assert before + 45_000 <= soonest[1]["due_ms"] <= time.time_ns() // 1_000_000 + 45_000
    assert {t["topic"]: t["count"] for t in listed["tiers"]} == {
        f"{setup.delays.prefix}.1s": 0,
        tier_30s: 3,  # 45 s, 5 min (a tier never longer than the delay) and the unreadable one
        f"{setup.delays.prefix}.10m": 1,
    }

    code, output = _ls(setup, tmp_path, "--json", "--limit", "1")
    assert code == 0 and json.loads(output)["count"] == 4 and len(json.loads(output)["soonest"]) == 1

    code, output = _ls(setup, tmp_path)  # the table: the hostile key escaped, never read as markup
    assert code == 0, output
    assert "Delayed events waiting: 4" in output and "\x1b" not in output
    assert "k-[/]\\x1b[31m" in output.replace("\n", "").replace(" ", "").replace("│", "")

    # the forwarder committed past the 30s tier's first record (the 45 s event): no longer listed
    group = Consumer({"bootstrap.servers": setup.kafka.bootstrap_servers, "group.id": setup.delays.group})
    try:
        group.commit(offsets=[TopicPartition(tier_30s, 0, 1)], asynchronous=False)
    finally:
        group.close()
    code, output = _ls(setup, tmp_path, "--json")
    listed = json.loads(output)
    assert listed["count"] == 3
    assert events[1].event_id not in {r["event_id"] for r in listed["soonest"]}


def test_kep_delays_ls_without_delays_or_their_topics_says_so(setup: DelaySetup, tmp_path: Path) -> None:
    plain = setup.topology.model_copy(update={"delays": None})
    unapplied = setup.topology.model_copy(
        update={"delays": setup.delays.model_copy(update={"prefix": f"{setup.delays.prefix}-never-applied"})}
    )
    for topology, says in ((plain, "no delays: section"), (unapplied, "never-applied.1s' does not exist")):
        path = str(write_topology(topology, tmp_path / "topology.yaml"))
        result = runner.invoke(app, ["delays", "ls", "-b", setup.kafka.bootstrap_servers, "--topology", path])
        assert result.exit_code == 2 and says in result.output, result.output
