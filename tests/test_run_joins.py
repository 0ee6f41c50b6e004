"""``kep run`` says what it waits for while it joins, and the tour's worker is ready in seconds on the embedded
broker (a join there takes about half of ``session.timeout.ms``)."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from kep.broker import EmbeddedBroker, free_port, is_embedded
from kep.cli.run import _for_the_broker, _JoinReport
from kep.consumers.runtime.worker import Worker
from kep.consumers.settings import load_settings
from kep.topology import admin
from kep.topology.loader import load_topology
from kep.topology.settings import KafkaSettings
from tests.support.processes import WorkerProcess
from tests.support.shop import SHOP_TOPOLOGY
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def test_the_tours_worker_is_ready_in_seconds_on_the_embedded_broker(tmp_path: Path) -> None:
    with EmbeddedBroker() as broker:
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        admin.apply(admin.plan(load_topology(SHOP_TOPOLOGY), kafka), kafka)
        port = free_port()
        env = {
            "KEP_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "KEP_METRICS_PORT": str(port),
            "KEP_IDEMPOTENCY_STORE": "memory://",
            "KEP_TOPOLOGY": str(SHOP_TOPOLOGY),
        }
        worker = WorkerProcess("shop.billing:app", [], env, tmp_path / "worker.log")
        worker.start()
        try:
            wait_until(lambda: _ready(f"http://127.0.0.1:{port}/readyz"), timeout=30, message="ready")
            log = worker.log()
        finally:
            assert worker.terminate(30) == 0, worker.log()
    # The join takes about 3 s with this session timeout (23 s with the default 45 s): the wait above is the bound.
    assert '"session.timeout.ms": 6000' in log or '"session.timeout.ms":6000' in log, log
    assert "joining the consumer group: waiting for its coordinator to assign partitions" in log


def test_the_embedded_broker_is_recognised_and_an_explicit_session_timeout_is_kept(kafka: str) -> None:
    assert not is_embedded(kafka)  # Apache Kafka
    with EmbeddedBroker() as broker:
        kafka_settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        assert is_embedded(broker.bootstrap_servers)
        default, _ = load_settings(None)
        assert _for_the_broker(default, kafka_settings).session_timeout_ms == 6000
        assert _for_the_broker(default, kafka_settings).heartbeat_interval_ms == 1000
        chosen, _ = load_settings(None, session_timeout_ms=20000)
        assert _for_the_broker(chosen, kafka_settings) is chosen
    assert _for_the_broker(default, KafkaSettings(bootstrap_servers=kafka)) is default


def test_while_it_joins_the_worker_says_every_few_seconds_what_it_waits_for() -> None:
    health = SimpleNamespace(ready=lambda: (False, "no partitions assigned"))
    plan = SimpleNamespace(group="billing", subscriptions=("orders", "orders.billing.retry.1s"))
    worker = cast(Worker, SimpleNamespace(plan=plan, health=health, stopping=False))
    settings, kafka = load_settings(None)
    logs: list[dict[str, Any]] = []

    def say(event: str, **fields: Any) -> None:
        logs.append({"event": event, **fields})

    report = _JoinReport(worker, kafka, settings, every_s=0.05, say=say).start()
    try:
        wait_until(lambda: any(e["event"] == "still joining the consumer group" for e in logs), timeout=10)
    finally:
        report.stop()
    first = logs[0]
    assert first["event"].startswith("joining the consumer group: waiting for its coordinator")
    assert first["group"] == "billing" and first["topics"] == ["orders", "orders.billing.retry.1s"]
    still = next(e for e in logs if e["event"] == "still joining the consumer group")
    assert still["waiting_for"] == "the group coordinator to assign partitions"
