"""What a live worker tells SREs: readiness through a rebalance, and lag that stays right while a retry
partition is paused (librdkafka freezes its own figures for paused partitions)."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kep.consumers.app import App
from kep.consumers.context import MessageContext
from kep.consumers.metrics import MetricsServer
from shop.orders import OrderPlaced
from tests.support.kafka import read_records
from tests.support.runtime import applied_topology, produce_orders, running
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def samples(url: str, name: str) -> dict[tuple[str, str], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[(sample.labels.get("topic", ""), sample.labels.get("partition", ""))] = sample.value
    return found


def test_readyz_flips_during_a_rebalance_and_recovers(kafka: str) -> None:
    """A handler held during the rebalance keeps the revoke (and so the rebalance) open: readiness is 503 for
    as long as it lasts, on any broker, however fast the broker's own part of the rebalance is."""
    setup = applied_topology(kafka, partitions=4)
    app = App(setup.group, topics=[setup.topic])
    entered, release = threading.Event(), threading.Event()

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        entered.set()
        release.wait(30)

    with running(app, setup, assignment_strategy="range") as first:
        server = MetricsServer(first.metrics.registry, first.health, port=0).start()
        try:
            ready = f"{server.url}/readyz"
            wait_until(lambda: status(ready) == 200, timeout=30, message="first worker ready")
            produce_orders(setup, 1)
            wait_until(entered.is_set, timeout=30, message="the handler holds a record")
            with running(app, setup, assignment_strategy="range") as second:
                wait_until(lambda: status(ready) == 503, timeout=30, message="not ready during the rebalance")
                release.set()
                wait_until(
                    lambda: status(ready) == 200 and second.health.ready()[0],
                    timeout=60,
                    message="both ready once the rebalance is over",
                )
        finally:
            release.set()
            server.stop()


def test_lag_of_a_retry_partition_waiting_for_due_times_follows_the_log(kafka: str) -> None:
    """Retry records not due yet are held unfinished: the committed offset stays before them, so they are lag."""
    setup = applied_topology(kafka, partitions=1, delays=(60,))
    [tier] = setup.spec.retry_tiers(setup.topic)
    app = App(setup.group, topics=[setup.topic])

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        raise RuntimeError("fails; its retry is due in a minute")

    with running(app, setup, probe=True) as worker:
        server = MetricsServer(worker.metrics.registry, worker.health, port=0).start()
        metrics = f"{server.url}/metrics"
        try:
            produce_orders(setup, 5, seed=1)
            assert len(read_records(kafka, tier.topic, 5)) == 5
            wait_until(
                lambda: sum(len(s.held or ()) for s in list(worker._states.values())) == 5,
                timeout=30,
                message="the retry records held until their due time",
            )
            produce_orders(setup, 5, seed=2)  # five more records reach the waiting partition
            assert len(read_records(kafka, tier.topic, 10)) == 10
            wait_until(
                lambda: samples(metrics, "kep_consumer_lag_messages").get((tier.topic, "0")) == 10,
                timeout=30,
                message="lag of the retry partition = 10 waiting records",
            )
            age = samples(metrics, "kep_consumer_lag_seconds")[(tier.topic, "0")]
            first_record = read_records(kafka, tier.topic, 1)[0]
            expected = time.time() - first_record.timestamp()[1] / 1000
            assert abs(age - expected) < 7, (age, expected)  # probes are reused for up to 5 s
            assert samples(metrics, "kep_consumer_lag_messages")[(setup.topic, "0")] == 0
        finally:
            server.stop()
