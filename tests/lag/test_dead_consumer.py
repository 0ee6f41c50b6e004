"""A group whose only consumer was killed with SIGKILL while records keep arriving: the exporter reports it
OK while it keeps up, then STALL (members still listed, as on the embedded broker, which never evicts the
dead member without a live one) or STOP (the group went Empty) once a whole window passed without a commit."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Producer

from kep.consumers.lag import GroupLag, LagExporter, Status
from tests.lag.support import settings
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.embedded]

MEMBER = Path(__file__).with_name("_member.py")


def test_a_group_whose_consumer_was_killed_moves_from_ok_to_stall_or_stop(
    kafka: str, topic_factory: Callable[..., str], group_id: str, tmp_path: Path
) -> None:
    topic = topic_factory(partitions=1, prefix="lagdead")
    log_path = tmp_path / "member.log"
    producer = Producer({"bootstrap.servers": kafka, "linger.ms": 0})
    with open(log_path, "wb") as log:
        member = subprocess.Popen(
            [sys.executable, str(MEMBER), kafka, topic, group_id], stdout=log, stderr=log
        )
    try:
        for _ in range(3):
            producer.produce(topic, b"before", partition=0)
        producer.flush(10)
        with LagExporter(
            settings(kafka), group_filter=group_id, poll_interval_s=0.5, window_s=3.0
        ) as exporter:
            exporter.start()

            def group() -> GroupLag | None:
                snapshot = exporter.snapshot
                return snapshot.group(group_id) if snapshot is not None else None

            def caught_up() -> bool:
                g = group()
                return g is not None and g.status is Status.OK and [p.committed for p in g.partitions] == [3]

            wait_until(caught_up, timeout=40, message=f"member caught up; log: {log_path.read_text()}")
            member.kill()
            member.wait(10)

            def stalled() -> GroupLag | None:
                producer.produce(topic, b"after", partition=0)  # records keep arriving
                producer.poll(0)
                g = group()
                return g if g is not None and g.status in (Status.STALL, Status.STOP) else None

            g = wait_until(stalled, timeout=30, interval=0.2, message="group reported STALL or STOP")
            assert g is not None
        [partition] = g.partitions
        assert partition.committed == 3
        assert partition.lag_messages is not None and partition.lag_messages > 0
        assert partition.status is g.status
    finally:
        if member.poll() is None:
            member.kill()
            member.wait(10)
        producer.flush(10)
