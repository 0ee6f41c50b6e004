"""Every metric name the dashboard and the alert rules use is one kep exports.

The worker's names come from a live WorkerMetrics + MetricsServer (and a live ``kep run`` worker), the
exporter's from a live lag exporter."""

from __future__ import annotations

import http.client
import importlib.util
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import CollectorRegistry

from kep.consumers.metrics import Health, MetricsServer, PartitionState, WorkerMetrics
from tests.metrics.observability import alert_exprs, dashboard_exprs, names_in
from tests.metrics.support import Answer, StaticSource, make_every_hot_path_call
from tests.support.kafka import unique
from tests.support.shop import SHOP
from tests.support.wait import wait_until

WORKER_PREFIXES = ("kep_consumer_", "kep_messages_", "kep_handler_", "kep_commit_")
EXPORTER_PREFIXES = ("kep_group_", "kep_partition_", "kep_exporter_")
OUTBOX_PREFIXES = ("kep_outbox_",)
_TYPE = re.compile(r"^# TYPE (\S+) (\S+)$")
_SUFFIXES = {"histogram": ("", "_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}


def used_names() -> set[str]:
    return names_in(dashboard_exprs() + alert_exprs())


def fetch(port: int, path: str = "/metrics") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def exposed(text: str) -> tuple[set[str], set[str]]:
    """``(names declared by # TYPE lines, expanded for histograms; names that have samples)``."""
    declared: set[str] = set()
    with_samples: set[str] = set()
    for line in text.splitlines():
        match = _TYPE.match(line)
        if match:
            name, kind = match.groups()
            declared.update(name + suffix for suffix in _SUFFIXES.get(kind, ("",)))
        elif line and not line.startswith("#"):
            with_samples.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return declared, with_samples


def live_worker_metrics_text() -> str:
    """A WorkerMetrics fed with a state source and a probe, every hot-path call made, scraped over HTTP."""
    metrics = WorkerMetrics("billing", registry=CollectorRegistry())
    source = StaticSource(
        [
            PartitionState("orders", 0, committed=5, processed=8, log_end=10, paused=False),
            PartitionState("orders", 1, committed=3, processed=3, log_end=3, paused=True),
        ],
        in_flight_count=2,
    )
    now_ms = int(time.time() * 1000)
    answers = {("orders", 0): Answer(10, now_ms - 5000), ("orders", 1): Answer(9, now_ms - 1000)}
    metrics.bind(source, lambda positions: {k: answers[k] for k in positions if k in answers})
    make_every_hot_path_call(metrics)
    with MetricsServer(metrics.registry, Health(), port=0, host="127.0.0.1") as server:
        status, text = fetch(server.port)
    assert status == 200
    return text


@pytest.mark.unit
def test_every_worker_metric_the_dashboard_and_rules_use_has_series_on_a_live_worker_metrics() -> None:
    declared, with_samples = exposed(live_worker_metrics_text())
    wanted = {name for name in used_names() if name.startswith(WORKER_PREFIXES)}
    assert wanted, "the dashboard and rules use no worker metric: the name pattern is broken"
    assert wanted <= declared, f"not exported by WorkerMetrics: {sorted(wanted - declared)}"
    assert wanted <= with_samples, f"exported without series: {sorted(wanted - with_samples)}"


@pytest.mark.unit
def test_every_name_used_is_a_worker_or_an_exporter_name() -> None:
    unknown = {
        n for n in used_names() if not n.startswith(WORKER_PREFIXES + EXPORTER_PREFIXES + OUTBOX_PREFIXES)
    }
    assert not unknown, f"metric names of no kep component: {sorted(unknown)}"


@pytest.mark.unit
def test_every_outbox_metric_the_rules_use_has_series_on_a_live_relay_metrics() -> None:
    from kep.producers.outbox import OUTBOX_METRIC_NAMES, RelayMetrics

    metrics = RelayMetrics("kep_outbox", CollectorRegistry())
    metrics.backlog(3, 12.5)
    metrics.published(2)
    metrics.active(True)
    with MetricsServer(metrics.registry, Health(), port=0, host="127.0.0.1") as server:
        status, text = fetch(server.port)
    assert status == 200
    declared, with_samples = exposed(text)
    wanted = {name for name in used_names() if name.startswith(OUTBOX_PREFIXES)}
    assert wanted, "the rules use no outbox metric"
    assert wanted <= with_samples, f"exported without series: {sorted(wanted - with_samples)}"
    assert OUTBOX_METRIC_NAMES <= declared


@pytest.fixture
def lagging_group(kafka: str, topic_factory: Callable[..., str]) -> Iterator[tuple[str, str]]:
    """A group with a commit at offset 1 on a topic holding 4 records: lag 3."""
    topic = topic_factory(partitions=1, prefix="names")
    group = unique("names-g")
    producer = Producer({"bootstrap.servers": kafka, "enable.idempotence": True})
    for i in range(4):
        producer.produce(topic, value=b"v%d" % i, partition=0)
    assert producer.flush(10) == 0
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": group, "allow.auto.create.topics": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    finally:
        consumer.close()
    yield group, topic


@pytest.mark.integration
def test_every_exporter_metric_the_dashboard_and_rules_use_has_series_on_a_live_exporter(
    kafka: str, lagging_group: tuple[str, str]
) -> None:
    if importlib.util.find_spec("kep.consumers.lag.exporter") is None:
        pytest.skip("kep.consumers.lag.exporter is not there yet: cannot scrape a live lag exporter")
    from kep.consumers.lag.exporter import LagExporter
    from kep.topology.settings import KafkaSettings

    group, _topic = lagging_group
    exporter = LagExporter(
        KafkaSettings(bootstrap_servers=kafka), group_filter=re.escape(group), poll_interval_s=1
    )
    try:
        server = exporter.serve(port=0, host="127.0.0.1")
        exporter.poll_once()
        status, text = fetch(server.port)
    finally:
        exporter.stop()
    assert status == 200
    declared, with_samples = exposed(text)
    worker_declared, _ = exposed(live_worker_metrics_text())
    wanted = {name for name in used_names() if name.startswith(EXPORTER_PREFIXES)}
    assert wanted <= declared, f"not exported by the lag exporter: {sorted(wanted - declared)}"
    assert wanted <= with_samples, f"exported without series: {sorted(wanted - with_samples)}"
    from kep.producers.outbox import OUTBOX_METRIC_NAMES

    unknown = used_names() - declared - worker_declared - OUTBOX_METRIC_NAMES
    assert not unknown, f"used by the dashboard or rules, exported by nobody: {sorted(unknown)}"


@pytest.mark.slow
@pytest.mark.integration
def test_a_running_kep_worker_exports_every_worker_metric_the_dashboard_and_rules_use(
    kafka: str, tmp_path: Path
) -> None:
    kep = [sys.executable, "-m", "kep.cli.main"]
    env = {
        **os.environ,
        "KEP_TOPOLOGY": "topology.yaml",  # the shop example's, run from its directory as a service runs kep
        "KEP_KAFKA_BOOTSTRAP_SERVERS": kafka,
        "KEP_SESSION_TIMEOUT_MS": "6000",
        "KEP_HEARTBEAT_INTERVAL_MS": "1000",
        "KEP_IDEMPOTENCY_STORE": "memory://",
        "KEP_LOG_FORMAT": "json",
    }
    applied = subprocess.run(
        [*kep, "topology", "apply"], env=env, cwd=SHOP, capture_output=True, text=True, timeout=120
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    port = _free_port()
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log_file:
        worker = subprocess.Popen(
            [*kep, "run", "shop.billing:app", "--metrics-port", str(port)],
            env=env,
            cwd=SHOP,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            text = wait_until(
                lambda: _assigned(port) or (worker.poll() is not None and "exited"),
                timeout=60,
                message="a worker with partitions assigned",
            )
            assert worker.poll() is None, log_path.read_text()[-3000:]
            assert isinstance(text, str)
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    declared, _ = exposed(text)
    wanted = {name for name in used_names() if name.startswith(WORKER_PREFIXES)}
    assert wanted <= declared, f"not exported by a running worker: {sorted(wanted - declared)}"


def _assigned(port: int) -> str | None:
    """The worker's /metrics once it has been assigned partitions (counted by its rebalance callback)."""
    try:
        status, text = fetch(port)
    except OSError:
        return None
    match = re.search(r'^kep_consumer_rebalances_total\{[^}]*kind="assign"[^}]*\} (\S+)$', text, re.MULTILINE)
    return text if status == 200 and match is not None and float(match.group(1)) > 0 else None


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
