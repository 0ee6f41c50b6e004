"""Views of a snapshot without a broker: the collector's series, the JSON routes, a failed poll, and how
positions are spread over probe calls."""

from __future__ import annotations

import json

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from kep.consumers.lag import NO_OFFSET, GroupLag, LagCollector, LagSnapshot, PartitionLag, PollState, Status
from kep.consumers.lag.monitor import probe_rounds
from kep.consumers.lag.routes import groups_handler
from tests.lag.support import metric_samples, value

pytestmark = pytest.mark.unit

GROUP = GroupLag(
    "billing/eu",
    "STABLE",
    2,
    (
        PartitionLag("orders", 0, 10, 10, 25, 15, 42.5, Status.STALL),
        PartitionLag("orders", 1, None, 0, 4, 4, 3.0, Status.OK),
        PartitionLag("payments", 0, 7, 7, None, None, None, Status.ERR),
    ),
    status=Status.ERR,
)
SNAPSHOT = LagSnapshot(1_700_000_000.0, 0.25, (GROUP,))


def scrape(state: PollState) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    registry = CollectorRegistry()
    registry.register(LagCollector(lambda: state))
    return metric_samples(generate_latest(registry).decode())


def test_the_collector_exports_partition_group_and_exporter_series() -> None:
    s = scrape(PollState(SNAPSHOT, last_poll_at=1_700_000_000.5, last_duration_s=0.25, errors_total=3))
    g = "billing/eu"
    assert value(s, "kep_group_lag_messages", group=g, topic="orders", partition=0) == 15
    assert value(s, "kep_group_lag_seconds", group=g, topic="orders", partition=0) == 42.5
    assert value(s, "kep_group_committed_offset", group=g, topic="orders", partition=0) == 10
    assert value(s, "kep_group_committed_offset", group=g, topic="orders", partition=1) is None  # no commit
    assert value(s, "kep_group_log_end_offset", group=g, topic="payments", partition=0) is None  # unreadable
    assert value(s, "kep_group_lag_messages", group=g, topic="payments", partition=0) is None
    assert value(s, "kep_group_lag_messages_sum", group=g, topic="orders") == 19
    assert value(s, "kep_group_lag_messages_sum", group=g, topic="payments") == 0
    assert value(s, "kep_group_max_lag_seconds", group=g) == 42.5
    assert value(s, "kep_group_members", group=g) == 2
    assert {st for st in Status if value(s, "kep_group_status", group=g, status=st.value) == 1} == {
        Status.ERR
    }
    assert sum(value(s, "kep_group_status", group=g, status=st.value) or 0 for st in Status) == 1
    p0 = {"group": g, "topic": "orders", "partition": 0}
    assert value(s, "kep_partition_status", **p0, status="STALL") == 1
    partition_series = [k for k in s if k[0] == "kep_partition_status"]
    assert len(partition_series) == 3  # one per partition: its current status
    assert value(s, "kep_exporter_last_poll_timestamp_seconds") == 1_700_000_000.5
    assert value(s, "kep_exporter_poll_duration_seconds") == 0.25
    assert value(s, "kep_exporter_poll_errors_total") == 3
    assert [k for k in s if k[0] == "kep_build_info"]


def test_a_scrape_reuses_the_families_until_the_next_poll() -> None:
    state = PollState(SNAPSHOT, last_poll_at=1.0, last_duration_s=0.1)
    collector = LagCollector(lambda: state)
    first = list(collector.collect())
    assert all(a is b for a, b in zip(first, collector.collect(), strict=True))
    state = PollState(SNAPSHOT, last_poll_at=2.0, last_duration_s=0.1)
    assert not any(a is b for a, b in zip(first, collector.collect(), strict=True))


def test_before_the_first_poll_only_exporter_series_exist() -> None:
    s = scrape(PollState())
    assert not [k for k in s if k[0].startswith("kep_group_") or k[0] == "kep_partition_status"]
    assert value(s, "kep_exporter_poll_errors_total") == 0
    assert value(s, "kep_exporter_last_poll_timestamp_seconds") is None


def test_groups_routes_answer_503_before_a_poll_then_a_list_a_detail_and_404() -> None:
    state = PollState()
    handle = groups_handler(lambda: state)
    assert handle("/groups")[0] == 503
    assert handle("/groups/billing")[0] == 503

    state = PollState(SNAPSHOT, last_poll_at=1.0)
    status, body, content_type = handle("/groups?format=json")
    assert (status, content_type) == (200, "application/json")
    [summary] = json.loads(body)
    assert summary["group"] == "billing/eu" and summary["status"] == "ERR" and summary["lag_messages"] == 19

    status, body, _ = handle("/groups/billing%2Feu")
    detail = json.loads(body)
    assert status == 200 and detail["members"] == 2
    assert [p["status"] for p in detail["partitions"]] == ["STALL", "OK", "ERR"]
    assert detail["partitions"][1] == {
        "topic": "orders",
        "partition": 1,
        "committed": None,
        "log_start": None,
        "log_end": 4,
        "lag_messages": 4,
        "lag_seconds": 3.0,
        "below_log_start": False,
        "status": "OK",
    }

    status, body, _ = handle("/groups/shipping")
    assert status == 404 and json.loads(body) == {"error": "unknown group: shipping"}


def test_a_failed_poll_marks_every_known_group_and_partition_err() -> None:
    healthy = LagSnapshot(1.0, 0.1, (GroupLag("g", "STABLE", 1, (PartitionLag("t", 0, 1, 1, 1, 0, 0.0),)),))
    failed = healthy.failed("LagReadError: broker down", taken_at=2.0, duration_s=5.0)
    assert failed.error == "LagReadError: broker down"
    assert [g.status for g in failed.groups] == [Status.ERR]
    assert [p.status for p in failed.groups[0].partitions] == [Status.ERR]
    assert failed.groups[0].partitions[0].lag_messages == 0  # the last values stay visible


def test_group_status_is_err_when_its_offsets_could_not_be_read() -> None:
    group = GroupLag("g", "UNKNOWN", None, (), error="cannot read").with_statuses({})
    assert group.status is Status.ERR


def test_distinct_positions_of_a_partition_go_to_separate_probe_calls_and_equal_ones_are_shared() -> None:
    rounds = probe_rounds(
        {
            "a": {("t", 0): 5, ("t", 1): None},
            "b": {("t", 0): 5, ("u", 0): 1},
            "c": {("t", 0): 9, ("t", 1): 2},
        }
    )
    assert len(rounds) == 2
    asked = sorted((key, offset) for r in rounds for key, offset in r.items())
    assert asked == [(("t", 0), 5), (("t", 0), 9), (("t", 1), NO_OFFSET), (("t", 1), 2), (("u", 0), 1)]
    assert probe_rounds({}) == []


def test_the_probe_consumer_never_takes_group_membership_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connection settings made for a KIP-848 worker (``group.protocol=consumer``) beside classic keys would
    make librdkafka refuse the probe's consumer; it never joins a group, so it takes none of them."""
    from kep.consumers.lag import LagProbe
    from kep.topology.settings import KafkaSettings

    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:1")
    extra = {
        "group.protocol": "consumer",
        "session.timeout.ms": 6000,
        "partition.assignment.strategy": "range",
    }
    plain = kafka.as_librdkafka_dict()
    monkeypatch.setattr(KafkaSettings, "as_librdkafka_dict", lambda self: {**plain, **extra})
    LagProbe(kafka).close()
