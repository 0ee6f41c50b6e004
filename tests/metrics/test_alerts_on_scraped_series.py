"""The shipped alert rules evaluated by promtool on series scraped from a running worker and lag exporter.

Retries that wait on purpose (a 30 s and a 1 h tier) with a caught-up main topic page nobody while the retry
backlog stays visible; a group that is truly stuck pages, with the namespace its alerts are routed by.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

from kep.consumers.app import App
from kep.consumers.context import MessageContext
from kep.consumers.lag import LagExporter, LagSnapshot, Status
from kep.consumers.metrics import MetricsServer
from kep.consumers.runtime.worker import Worker
from kep.producers import headers as h
from kep.schemas.codec import codec_for
from shop.orders import OrderPlaced
from shop.samples import sample_events
from tests.metrics.observability import ALERTS, promtool
from tests.metrics.promql import SampleKey, Target, firing, input_series, run_rule_tests, scrape
from tests.support.runtime import Setup, applied_topology, produce_orders, running
from tests.support.wait import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(promtool() is None, reason="promtool not installed (`make tools`)"),
]

ROUTING = {"namespace": "payments", "cluster": "test-cluster"}
LAG_SECONDS_ALERTS = 'ALERTS{alertname=~"KepConsumerLagSeconds.*", alertstate="firing"}'
MINUTE_MS = 60_000
#: The exporter's status window in these tests, seconds.
EXPORTER_WINDOW_S = 1.0


class Outage(Exception):
    """A retryable failure."""


@contextlib.contextmanager
def exporter_for(setup: Setup) -> Iterator[tuple[LagExporter, str]]:
    """The lag exporter on ``setup``'s group, serving on a free port; polled by the test (``poll_once``)."""
    with LagExporter(
        setup.kafka, group_filter=setup.group, poll_interval_s=1, window_s=EXPORTER_WINDOW_S
    ) as exporter:
        server = exporter.serve(port=0, host="127.0.0.1")
        yield exporter, f"{server.url}/metrics"


@contextlib.contextmanager
def served(worker: Worker) -> Iterator[str]:
    server = MetricsServer(worker.metrics.registry, worker.health, port=0, host="127.0.0.1").start()
    try:
        yield f"{server.url}/metrics"
    finally:
        server.stop()


def targets(worker: dict[SampleKey, float], exporter: dict[SampleKey, float]) -> list[Target]:
    """The two scrape targets as a Kubernetes Prometheus labels them."""
    return [
        Target({**ROUTING, "job": "kep-worker", "instance": "10.0.0.7:9400"}, [worker]),
        Target({**ROUTING, "job": "kep-lag-exporter", "instance": "10.0.0.9:9401"}, [exporter]),
    ]


def scrape_until(url: str, name: str, **labels: str) -> dict[SampleKey, float]:
    """A scrape of ``url`` that has a sample ``name`` with ``labels`` (the worker's probe answers in the
    background, so lag in seconds may need a second scrape)."""

    def has_it() -> dict[SampleKey, float] | None:
        samples = scrape(url)
        wanted = set(labels.items())
        return samples if any(n == name and wanted <= set(ls) for n, ls in samples) else None

    found = wait_until(has_it, timeout=30, message=f"{name} {labels} at {url}")
    assert found is not None
    return found


def partition(snapshot: LagSnapshot | None, group: str, topic: str) -> tuple[int | None, float | None]:
    assert snapshot is not None
    found = snapshot.group(group)
    assert found is not None, f"the exporter did not see group {group}"
    (p,) = [p for p in found.partitions if p.topic == topic]
    return p.lag_messages, p.lag_seconds


def test_retries_waiting_in_a_30s_and_a_1h_tier_with_a_caught_up_main_topic_page_nobody(
    kafka: str, tmp_path: Path
) -> None:
    setup = applied_topology(kafka, partitions=1, delays=(30, 3600))
    half_minute, hour = (tier.topic for tier in setup.spec.retry_tiers(setup.topic))
    # Retries failed 20 minutes ago into the 1 h tier: written long ago, due in 40 minutes.
    now = int(time.time() * 1000)
    producer = Producer({"bootstrap.servers": kafka})
    for i in range(2):
        due = str(now + 40 * MINUTE_MS)
        producer.produce(hour, b"v", b"k%d" % i, timestamp=now - 20 * MINUTE_MS, headers=[(h.DUE_TIME, due)])
    assert producer.flush(10) == 0
    produce_orders(setup, 3)
    app = App(setup.group, topics=[setup.topic])

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        raise Outage("the payment gateway is down")

    with running(app, setup, probe=True) as worker, served(worker) as worker_url:
        with exporter_for(setup) as (exporter, exporter_url):
            seen_since: list[float] = []  # when the exporter first saw both tiers

            def settled() -> LagSnapshot | None:
                snapshot = exporter.poll_once()
                group = snapshot.group(setup.group)
                topics = {p.topic for p in group.partitions} if group is not None else set()
                if not {setup.topic, half_minute, hour} <= topics:
                    return None
                seen_since[:1] = seen_since[:1] or [time.monotonic()]
                # judged over a whole status window: the tiers' offsets stand still all along, on purpose
                complete = time.monotonic() - seen_since[0] > 2 * EXPORTER_WINDOW_S
                if complete and partition(snapshot, setup.group, setup.topic)[0] == 0:
                    return snapshot
                return None

            snapshot = wait_until(
                settled, timeout=60, message="main topic caught up, both tiers seen for a whole window"
            )
            assert partition(snapshot, setup.group, hour) == (2, 0.0)  # the backlog shows, no lag in seconds
            waiting, _seconds = partition(snapshot, setup.group, half_minute)
            assert waiting is not None and waiting >= 1
            group = snapshot.group(setup.group) if snapshot is not None else None
            assert group is not None and group.status is Status.OK  # retries not due yet are not a stall
            exported = scrape(exporter_url)
        scraped = scrape_until(worker_url, "kep_consumer_lag_seconds", topic=hour)

    backlog = (
        "sum by (namespace, cluster, job, group, topic) "
        '(kep_group_lag_messages_sum{topic=~".+\\\\.retry\\\\..+"})'
    )
    expected_backlog = [
        {
            "labels": f'{{cluster="test-cluster",group="{setup.group}",job="kep-lag-exporter",namespace="payments",'
            f'topic="{topic}"}}',
            "value": float(value),
        }
        for (name, labels), value in sorted(exported.items())
        if name == "kep_group_lag_messages_sum" and dict(labels)["topic"] in (half_minute, hour)
        for topic in [dict(labels)["topic"]]
    ]
    assert len(expected_backlog) == 2
    result = run_rule_tests(
        tmp_path,
        [ALERTS],
        [
            {
                "interval": "1m",
                "input_series": input_series(targets(scraped, exported), points=30),
                "promql_expr_test": [
                    {"expr": "ALERTS", "eval_time": "12m", "exp_samples": []},  # no alert at all
                    {"expr": backlog, "eval_time": "12m", "exp_samples": expected_backlog},
                ],
            }
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _produce_old_orders(setup: Setup, count: int, age_ms: int) -> None:
    codec = codec_for()
    producer = Producer({"bootstrap.servers": setup.kafka.bootstrap_servers})
    written = int(time.time() * 1000) - age_ms
    orders = [e for e in sample_events(count, seed=7, kind="orders") if isinstance(e, OrderPlaced)]
    for order in orders:
        headers: list[tuple[str, str | bytes | None]] = [
            (h.EVENT_TYPE, order.avro_name),
            (h.SCHEMA, codec.schema_ref(OrderPlaced)),
        ]
        producer.produce(
            setup.topic, codec.encode(order), order.order_id.encode(), timestamp=written, headers=headers
        )
    assert producer.flush(10) == 0


def test_a_truly_stuck_group_fires_the_lag_alerts_with_its_namespace(kafka: str, tmp_path: Path) -> None:
    setup = applied_topology(kafka, partitions=1)
    _produce_old_orders(setup, 2, age_ms=120 * MINUTE_MS)  # two hours of work waiting
    app = App(setup.group, topics=[setup.topic])
    started, release = threading.Event(), threading.Event()

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        started.set()
        release.wait(120)  # stuck on its first message until the test lets go

    with running(app, setup, probe=True) as worker, served(worker) as worker_url:
        try:
            wait_until(started.is_set, timeout=60, message="the handler is stuck")
            with exporter_for(setup) as (exporter, exporter_url):
                snapshot = wait_until(
                    lambda: s if (s := exporter.poll_once()).group(setup.group) is not None else None,
                    timeout=30,
                    message="the exporter sees the group",
                )
                _messages, seconds = partition(snapshot, setup.group, setup.topic)
                assert seconds is not None and seconds > 7000
                exported = scrape(exporter_url)
            scraped = scrape_until(worker_url, "kep_consumer_lag_seconds", topic=setup.topic)
        finally:
            release.set()

    alert = {**ROUTING, "group": setup.group, "job": "kep-lag-exporter"}
    result = run_rule_tests(
        tmp_path,
        [ALERTS],
        [
            {
                "interval": "1m",
                "input_series": input_series(targets(scraped, exported), points=30),
                "promql_expr_test": [
                    {"expr": LAG_SECONDS_ALERTS, "eval_time": "9m", "exp_samples": []},  # for: 10m
                    {
                        "expr": LAG_SECONDS_ALERTS,
                        "eval_time": "12m",
                        "exp_samples": firing(
                            [
                                {**alert, "alertname": "KepConsumerLagSecondsHigh", "severity": "warning"},
                                {
                                    **alert,
                                    "alertname": "KepConsumerLagSecondsCritical",
                                    "severity": "critical",
                                },
                            ]
                        ),
                    },
                ],
            }
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr
