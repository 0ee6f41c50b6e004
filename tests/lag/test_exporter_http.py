"""The exporter over HTTP: /metrics values for known offsets, /groups and /groups/{group} JSON, 503 for a group
not polled yet and 404 for an unknown one, /healthz and /readyz before and after the first poll."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from kep.broker import free_port
from kep.consumers.lag import LAG_METRIC_NAMES, LagExporter
from kep.consumers.metrics import MetricsServer
from tests.lag.support import commit, http_get, http_json, metric_samples, now_ms, produce, settings, value
from tests.support.kafka import unique
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.embedded]

N = 30
K = 12


@pytest.fixture
def exporter(kafka: str, group_id: str) -> Iterator[LagExporter]:
    with LagExporter(settings(kafka), group_filter=group_id, poll_interval_s=60, window_s=120) as e:
        yield e


@pytest.fixture
def server(exporter: LagExporter) -> MetricsServer:
    return exporter.serve(port=0, host="127.0.0.1")


@pytest.fixture
def topic(kafka: str, topic_factory: Callable[..., str], group_id: str) -> str:
    """Partition 0: N records 30 s old, committed at K. Partition 1: empty, committed at 0."""
    name = topic_factory(partitions=2, prefix="lagexp")
    produce(kafka, name, 0, [now_ms() - 30_000] * N, batches=2)
    commit(kafka, group_id, {(name, 0): K, (name, 1): 0})
    return name


def test_metrics_report_lag_offsets_status_and_the_poll(
    exporter: LagExporter, server: MetricsServer, topic: str, group_id: str
) -> None:
    exporter.poll_once()
    status, body = http_get(f"{server.url}/metrics")
    assert status == 200
    s = metric_samples(body.decode())
    p0 = {"group": group_id, "topic": topic, "partition": 0}
    p1 = {"group": group_id, "topic": topic, "partition": 1}
    assert value(s, "kep_group_lag_messages", **p0) == N - K
    assert value(s, "kep_group_lag_messages", **p1) == 0
    lag_seconds = value(s, "kep_group_lag_seconds", **p0)
    assert lag_seconds is not None and 29 < lag_seconds < 60
    assert value(s, "kep_group_lag_seconds", **p1) == 0
    assert value(s, "kep_group_lag_messages_sum", group=group_id, topic=topic) == N - K
    assert value(s, "kep_group_max_lag_seconds", group=group_id) == lag_seconds
    assert value(s, "kep_group_committed_offset", **p0) == K
    assert value(s, "kep_group_log_end_offset", **p0) == N
    assert value(s, "kep_group_log_end_offset", **p1) == 0
    assert value(s, "kep_group_members", group=group_id) == 0
    assert [
        st
        for st in ("OK", "WARN", "STALL", "STOP", "ERR")
        if value(s, "kep_group_status", group=group_id, status=st)
    ] == ["OK"]
    assert value(s, "kep_partition_status", **p0, status="OK") == 1
    assert value(s, "kep_partition_status", **p0, status="STALL") is None  # only the current status
    assert value(s, "kep_exporter_poll_errors_total") == 0
    assert (value(s, "kep_exporter_last_poll_timestamp_seconds") or 0) > 1e9
    assert (value(s, "kep_exporter_poll_duration_seconds") or -1) >= 0
    assert {name for name, _ in s if name.startswith("kep_")} >= LAG_METRIC_NAMES


def test_groups_json_lists_groups_and_details_partitions(
    exporter: LagExporter, server: MetricsServer, topic: str, group_id: str
) -> None:
    exporter.poll_once()
    status, groups = http_json(f"{server.url}/groups")
    assert status == 200
    assert groups == [
        {
            "group": group_id,
            "status": "OK",
            "state": "EMPTY",
            "members": 0,
            "topics": [topic],
            "partitions": 2,
            "lag_messages": N - K,
            "max_lag_seconds": groups[0]["max_lag_seconds"],
            "error": None,
        }
    ]
    assert groups[0]["max_lag_seconds"] > 29

    status, detail = http_json(f"{server.url}/groups/{quote(group_id)}")
    assert status == 200
    assert detail["group"] == group_id and detail["status"] == "OK"
    partitions = {p["partition"]: p for p in detail["partitions"]}
    assert {k: partitions[0][k] for k in ("committed", "log_end", "lag_messages", "status")} == {
        "committed": K,
        "log_end": N,
        "lag_messages": N - K,
        "status": "OK",
    }
    assert partitions[0]["lag_seconds"] > 29
    assert {k: partitions[1][k] for k in ("committed", "log_end", "lag_messages", "lag_seconds")} == {
        "committed": 0,
        "log_end": 0,
        "lag_messages": 0,
        "lag_seconds": 0.0,
    }

    status, missing = http_json(f"{server.url}/groups/no-such-group")
    assert status == 404 and "no-such-group" in missing["error"]


def test_ready_only_after_a_successful_poll_and_live_while_polling(
    exporter: LagExporter, server: MetricsServer, topic: str
) -> None:
    assert http_get(f"{server.url}/healthz")[0] == 200
    assert http_get(f"{server.url}/readyz")[0] == 503
    assert http_get(f"{server.url}/groups")[0] == 503
    exporter.start()
    wait_until(lambda: http_get(f"{server.url}/readyz")[0] == 200, timeout=15, message="exporter ready")
    assert http_get(f"{server.url}/groups")[0] == 200


def test_a_poll_that_fails_counts_an_error_keeps_the_exporter_live_and_not_ready() -> None:
    registry = CollectorRegistry()
    unreachable = settings(f"127.0.0.1:{free_port()}")
    with LagExporter(unreachable, registry=registry, poll_interval_s=1, window_s=5, probe_timeout_s=0.5) as e:
        failed = e.poll_once()
        assert failed.error is not None and "consumer groups" in failed.error
        assert failed.groups == ()
        assert e.health.live()[0] and not e.health.ready()[0]
    s = metric_samples(generate_latest(registry).decode())
    assert value(s, "kep_exporter_poll_errors_total") == 1


def test_a_group_not_polled_yet_answers_503_and_the_exporter_polls_at_once(
    kafka: str, topic_factory: Callable[..., str]
) -> None:
    group, never = unique("late"), unique("late")
    with LagExporter(settings(kafka), group_filter="late-.*", poll_interval_s=60, window_s=120) as exporter:
        url = exporter.serve(port=0, host="127.0.0.1").url
        status, body = http_json(f"{url}/groups/{group}")
        assert status == 503 and body["error"].startswith("not polled yet")  # before the first poll
        exporter.start()
        wait_until(lambda: http_get(f"{url}/readyz")[0] == 200, timeout=15, message="first poll")

        name = topic_factory(partitions=1, prefix="late")
        commit(kafka, group, {(name, 0): 0})  # the group appears after the last poll
        status, body = http_json(f"{url}/groups/{group}")
        assert status == 503 and f"group {group} was not seen by a poll yet" in body["error"]
        # The next poll is 60 s away, but a question about a group it has not seen makes it poll now.
        wait_until(lambda: http_get(f"{url}/groups/{group}")[0] == 200, timeout=15, message="polled at once")

        assert http_get(f"{url}/groups/{never}")[0] == 503
        wait_until(lambda: http_get(f"{url}/groups/{never}")[0] == 404, timeout=15, message="then unknown")
        assert http_get(f"{url}/groups/other-group")[0] == 404  # the exporter does not watch it at all
