"""Every query of the shipped dashboard returns data on series scraped from a running worker and lag exporter.

The worker handles, retries (one retry waits in a 1 h tier), dead-letters, skips duplicates and commits; it and
the exporter are scraped twice with work in between, as Prometheus would, and each panel's query (Grafana
variables set to the group, ``$__rate_interval`` to 2m) becomes an alerting rule ``absent((QUERY) > -Inf)``
evaluated by ``promtool test rules``: a query that answers nothing, or only NaN, fires it.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest
import yaml

from kep.consumers.app import App
from kep.consumers.context import MessageContext
from kep.consumers.dlq.progress import start_replay_progress
from kep.consumers.lag import LagExporter, LagSnapshot
from kep.producers.producer import EventProducer
from shop.orders import OrderPlaced
from shop.samples import sample_events
from tests.metrics.observability import dashboard_targets, promtool
from tests.metrics.promql import Target, input_series, run_rule_tests, scrape
from tests.metrics.test_alerts_on_scraped_series import ROUTING, served
from tests.support.runtime import Setup, applied_topology, running
from tests.support.wait import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(promtool() is None, reason="promtool not installed (`make tools`)"),
]


class Outage(Exception):
    """Retryable."""


class Invalid(Exception):
    """Fatal: straight to the dead-letter topic."""


def _publish(setup: Setup, events: list[OrderPlaced]) -> None:
    with EventProducer(setup.kafka, setup.topology) as producer:
        for event in events:
            producer.publish(event, topic=setup.topic)
        assert producer.flush(30) == 0


def _orders(n: int, seed: int) -> list[OrderPlaced]:
    return [e for e in sample_events(n, seed=seed, kind="orders") if isinstance(e, OrderPlaced)]


def _caught_up(exporter: LagExporter, setup: Setup, replay_group: str) -> LagSnapshot | None:
    snapshot = exporter.poll_once()
    group, replay = snapshot.group(setup.group), snapshot.group(replay_group)
    if group is None or replay is None:
        return None
    main = [p for p in group.partitions if p.topic == setup.topic]
    return snapshot if main and all(p.lag_messages == 0 for p in main) else None


def test_every_dashboard_query_returns_data(kafka: str, tmp_path: Path) -> None:
    fatal = f"{__name__}.Invalid"
    setup = applied_topology(kafka, partitions=1, delays=(0.5, 3600), fatal=[fatal])
    dlq = setup.spec.dlq_topic(setup.topic)
    assert dlq is not None
    replay_group = f"kep-dlq-replay.{dlq}"
    first = _orders(6, seed=0)
    fails = {first[0].event_id: Invalid, first[1].event_id: Outage, first[2].event_id: Outage}
    runs: Counter[str] = Counter()
    done: set[str] = set()
    lock = threading.Lock()
    app = App(setup.group, topics=[setup.topic])

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        with lock:
            runs[event.event_id] += 1
        failure = fails.get(event.event_id)
        if failure is Invalid or (
            failure is Outage and (event.event_id == first[2].event_id or ctx.attempt == 1)
        ):
            raise failure(f"attempt {ctx.attempt}")
        with lock:
            done.add(event.event_id)

    exporter_filter = f"^({setup.group})$|^kep-dlq-replay\\..+\\.({setup.group})\\.dlq$"
    with (
        running(app, setup, probe=True) as worker,
        served(worker) as worker_url,
        LagExporter(setup.kafka, group_filter=exporter_filter, poll_interval_s=1, window_s=1) as exporter,
    ):
        exporter_url = f"{exporter.serve(port=0, host='127.0.0.1').url}/metrics"
        _publish(setup, first)
        wait_until(
            lambda: len(done) == 4 and runs[first[2].event_id] >= 2 and runs[first[0].event_id] == 1,
            timeout=60,
            message="handled, retried into the 1 h tier, dead-lettered",
        )
        assert start_replay_progress(setup.kafka, [dlq]) == [dlq]  # what `kep run` does when it starts
        wait_until(lambda: _caught_up(exporter, setup, replay_group), timeout=60, message="first poll")
        worker_scrapes, exporter_scrapes = [scrape(worker_url)], [scrape(exporter_url)]

        second = _orders(4, seed=1)
        _publish(setup, [*second, *first[3:]])  # new work, and three duplicates
        wait_until(lambda: len(done) == 8, timeout=60, message="the second batch handled")
        wait_until(lambda: _caught_up(exporter, setup, replay_group), timeout=60, message="committed")
        worker_scrapes.append(scrape(worker_url))
        exporter_scrapes.append(scrape(exporter_url))

    targets = [
        Target({**ROUTING, "job": "kep-worker", "instance": "10.0.0.7:9400"}, worker_scrapes),
        Target({**ROUTING, "job": "kep-lag-exporter", "instance": "10.0.0.9:9401"}, exporter_scrapes),
    ]
    queries = dashboard_targets(group=f"({setup.group})", __rate_interval="2m", __range="2m")
    rules = [
        {
            "alert": "DashboardQueryEmpty",
            "expr": f"absent(({expr}) > -Inf)",
            "labels": {"panel": panel["title"], "query": target["refId"]},
        }
        for panel, target, expr in queries
    ]
    # The control: a query that answers nothing does fire.
    rules.append({"alert": "ControlQueryEmpty", "expr": "absent((kep_no_such_metric) > -Inf)"})
    rule_file = tmp_path / "dashboard-queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, width=10_000))
    depth = next(
        expr
        for panel, target, expr in queries
        if panel["title"] == "Dead-letter topics" and target["refId"] == "B"
    )
    result = run_rule_tests(
        tmp_path,
        [rule_file],
        [
            {
                "interval": "1m",
                "input_series": input_series(targets, points=5),
                "alert_rule_test": [
                    {"eval_time": "1m", "alertname": "DashboardQueryEmpty", "exp_alerts": []}
                ],
                "promql_expr_test": [
                    # The dead-letter depth: the one dead letter waits for a replay.
                    {
                        "expr": depth,
                        "eval_time": "1m",
                        "exp_samples": [{"labels": f'{{topic="{dlq}"}}', "value": 1}],
                    }
                ],
            }
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(rules) >= 26  # every panel's every query took part
