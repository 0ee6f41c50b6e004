"""The scrape-time collector: offsets and lag from the bound source, lag in seconds and paused log ends from
the probe, probes rate-limited and scrapes bounded in time."""

from __future__ import annotations

import threading
import time

import pytest
import structlog
from prometheus_client import CollectorRegistry

from kep.consumers.metrics import NO_COMMIT_POSITION, MetricsError, PartitionState, ProbeCache, WorkerMetrics
from tests.metrics.support import Answer, ProbedAt, RecordingProbe, StaticSource, sample, scrape
from tests.support.wait import wait_until

pytestmark = pytest.mark.unit

G = "billing"


def bound(
    states: list[PartitionState], probe: RecordingProbe | None = None, **bind_kwargs: float
) -> tuple[CollectorRegistry, StaticSource]:
    registry = CollectorRegistry()
    source = StaticSource(states)
    WorkerMetrics(G, registry=registry).bind(source, probe, **bind_kwargs)
    return registry, source


def state(partition: int = 0, **kwargs: int | bool | None) -> PartitionState:
    fields: dict[str, int | bool | None] = {
        "committed": None,
        "processed": None,
        "log_end": None,
        "paused": False,
    }
    fields.update(kwargs)
    return PartitionState("orders", partition, **fields)  # type: ignore[arg-type]


def test_lag_is_log_end_minus_committed_and_processed_lag_uses_the_processed_offset() -> None:
    registry, _ = bound([state(0, committed=100, processed=140, log_end=150)])
    s = scrape(registry)
    labels: dict[str, str | int] = {"group": G, "topic": "orders", "partition": 0}
    assert sample(s, "kep_consumer_lag_messages", **labels) == 50
    assert sample(s, "kep_consumer_processed_lag_messages", **labels) == 10
    assert sample(s, "kep_consumer_log_end_offset", **labels) == 150
    assert sample(s, "kep_consumer_committed_offset", **labels) == 100
    assert sample(s, "kep_consumer_processed_offset", **labels) == 140


def test_without_a_probe_lag_seconds_is_zero_when_caught_up_and_absent_otherwise() -> None:
    registry, _ = bound(
        [state(0, committed=150, processed=150, log_end=150), state(1, committed=1, log_end=9)]
    )
    s = scrape(registry)
    assert sample(s, "kep_consumer_lag_seconds", group=G, topic="orders", partition=0) == 0
    assert sample(s, "kep_consumer_lag_seconds", group=G, topic="orders", partition=1) is None
    assert sample(s, "kep_consumer_lag_messages", group=G, topic="orders", partition=1) == 8


def test_group_gauges_count_assigned_paused_and_in_flight() -> None:
    registry, source = bound([state(0, log_end=1), state(1, log_end=1, paused=True), state(2, log_end=1)])
    source.in_flight_count = 17
    s = scrape(registry)
    assert sample(s, "kep_consumer_assigned_partitions", group=G) == 3
    assert sample(s, "kep_consumer_paused_partitions", group=G) == 1
    assert sample(s, "kep_consumer_in_flight_messages", group=G) == 17


def test_lag_seconds_is_the_age_of_the_record_at_the_committed_offset() -> None:
    probe = RecordingProbe(
        {("orders", 0): Answer(log_end=150, next_timestamp_ms=int((time.time() - 42) * 1000))}
    )
    registry, _ = bound([state(0, committed=100, processed=120, log_end=150)], probe)
    s = scrape(registry)
    assert probe.calls == [{("orders", 0): 100}]
    assert sample(s, "kep_consumer_lag_seconds", group=G, topic="orders", partition=0) == pytest.approx(
        42, abs=5
    )
    assert sample(s, "kep_consumer_lag_probe_timestamp_seconds", group=G) == pytest.approx(time.time(), abs=5)


def test_a_probe_at_the_log_end_means_caught_up_and_zero_seconds() -> None:
    probe = RecordingProbe({("orders", 0): Answer(log_end=100, next_timestamp_ms=None)})
    registry, _ = bound([state(0, committed=100, log_end=90, paused=True)], probe)
    s = scrape(registry)
    assert sample(s, "kep_consumer_lag_seconds", group=G, topic="orders", partition=0) == 0
    assert sample(s, "kep_consumer_lag_messages", group=G, topic="orders", partition=0) == 0


def test_a_paused_partition_takes_its_log_end_from_the_probe_not_the_frozen_watermark() -> None:
    old = int((time.time() - 300) * 1000)
    probe = RecordingProbe({("orders", 3): Answer(log_end=500, next_timestamp_ms=old)})
    registry, _ = bound([state(3, committed=100, processed=100, log_end=100, paused=True)], probe)
    s = scrape(registry)
    labels: dict[str, str | int] = {"group": G, "topic": "orders", "partition": 3}
    assert probe.calls == [{("orders", 3): 100}]
    assert sample(s, "kep_consumer_log_end_offset", **labels) == 500
    assert sample(s, "kep_consumer_lag_messages", **labels) == 400
    assert sample(s, "kep_consumer_processed_lag_messages", **labels) == 400
    assert sample(s, "kep_consumer_lag_seconds", **labels) == pytest.approx(300, abs=5)


def test_without_a_commit_lag_is_measured_from_the_log_start() -> None:
    probe = RecordingProbe({("orders", 0): ProbedAt(log_end=80, next_timestamp_ms=None, position=20)})
    registry, _ = bound(
        [state(0, log_end=80), state(1, log_end=80, log_start=30), state(2, log_end=80)], probe
    )
    s = scrape(registry)
    assert probe.calls == [
        {("orders", 0): NO_COMMIT_POSITION, ("orders", 1): 30, ("orders", 2): NO_COMMIT_POSITION}
    ]
    assert (
        sample(s, "kep_consumer_lag_messages", group=G, topic="orders", partition=0) == 60
    )  # probe's log start
    assert (
        sample(s, "kep_consumer_lag_messages", group=G, topic="orders", partition=1) == 50
    )  # worker's log start
    assert (
        sample(s, "kep_consumer_lag_messages", group=G, topic="orders", partition=2) == 80
    )  # unknown: from 0
    assert sample(s, "kep_consumer_committed_offset", group=G, topic="orders", partition=0) is None


def test_an_empty_partition_has_zero_lag_and_is_not_probed() -> None:
    probe = RecordingProbe()
    registry, _ = bound([state(0, log_end=0)], probe)
    s = scrape(registry)
    assert sample(s, "kep_consumer_lag_messages", group=G, topic="orders", partition=0) == 0
    assert sample(s, "kep_consumer_lag_seconds", group=G, topic="orders", partition=0) == 0
    assert probe.calls == []


def test_a_partition_with_no_fetch_yet_is_probed_for_its_log_end() -> None:
    probe = RecordingProbe({("orders", 0): Answer(log_end=7, next_timestamp_ms=None)})
    registry, _ = bound([state(0, committed=7)], probe)
    s = scrape(registry)
    assert sample(s, "kep_consumer_log_end_offset", group=G, topic="orders", partition=0) == 7
    assert sample(s, "kep_consumer_lag_messages", group=G, topic="orders", partition=0) == 0


def test_probe_results_younger_than_the_interval_are_reused() -> None:
    probe = RecordingProbe({("orders", 0): Answer(log_end=150, next_timestamp_ms=int(time.time() * 1000))})
    registry, _ = bound([state(0, committed=100, log_end=150)], probe, probe_interval_s=60)
    for _ in range(5):
        scrape(registry)
    assert len(probe.calls) == 1


def test_a_newly_assigned_partition_is_probed_before_the_interval_ends() -> None:
    probe = RecordingProbe()
    registry, source = bound([state(0, committed=1, log_end=5)], probe, probe_interval_s=60)
    scrape(registry)
    source.states.append(state(1, committed=1, log_end=5))
    scrape(registry)
    assert probe.calls == [{("orders", 0): 1}, {("orders", 0): 1, ("orders", 1): 1}]


def test_the_probe_runs_again_once_the_interval_has_passed() -> None:
    clock = [0.0]
    probe = RecordingProbe({("orders", 0): Answer(log_end=9, next_timestamp_ms=None)})
    cache = ProbeCache(probe, interval_s=5, timeout_s=5, clock=lambda: clock[0])
    assert cache.lookup({("orders", 0): 1}) == {("orders", 0): Answer(9, None)}
    clock[0] = 4.9
    cache.lookup({("orders", 0): 2})
    assert len(probe.calls) == 1
    clock[0] = 5.0
    cache.lookup({("orders", 0): 2})
    assert probe.calls[-1] == {("orders", 0): 2} and len(probe.calls) == 2


def test_answers_older_than_the_staleness_limit_are_dropped() -> None:
    clock = [0.0]
    probe = RecordingProbe({("orders", 0): Answer(log_end=9, next_timestamp_ms=None)})
    cache = ProbeCache(probe, interval_s=5, timeout_s=5, stale_after_s=20, clock=lambda: clock[0])
    cache.lookup({("orders", 0): 1})
    probe.answers.clear()  # the partition stops answering
    clock[0] = 10.0
    assert cache.lookup({("orders", 0): 1}) == {("orders", 0): Answer(9, None)}
    clock[0] = 20.5
    assert cache.lookup({("orders", 0): 1}) == {}


def test_a_slow_probe_does_not_hold_the_scrape_beyond_the_timeout_and_serves_the_next_one() -> None:
    probe = RecordingProbe(
        {("orders", 0): Answer(log_end=150, next_timestamp_ms=int((time.time() - 60) * 1000))}
    )
    probe.gate = threading.Event()
    registry, _ = bound(
        [state(0, committed=100, log_end=150)], probe, probe_interval_s=60, probe_timeout_s=0.2
    )
    try:
        started = time.monotonic()
        s = scrape(registry)
        assert time.monotonic() - started < 2.0
        assert sample(s, "kep_consumer_lag_seconds", group=G, topic="orders", partition=0) is None
        assert sample(s, "kep_consumer_lag_messages", group=G, topic="orders", partition=0) == 50
    finally:
        probe.gate.set()
    lag_seconds = wait_until(
        lambda: sample(scrape(registry), "kep_consumer_lag_seconds", group=G, topic="orders", partition=0),
        timeout=10,
        message="lag seconds from the probe that finished in the background",
    )
    assert lag_seconds == pytest.approx(60, abs=5)
    assert len(probe.calls) == 1


def test_a_failing_probe_leaves_the_scrape_working_and_logs_a_warning() -> None:
    probe = RecordingProbe()
    probe.error = RuntimeError("broker unreachable")
    registry, _ = bound([state(0, committed=100, log_end=150)], probe)
    with structlog.testing.capture_logs() as logs:
        s = scrape(registry)
    assert sample(s, "kep_consumer_lag_messages", group=G, topic="orders", partition=0) == 50
    assert sample(s, "kep_consumer_lag_seconds", group=G, topic="orders", partition=0) is None
    assert sample(s, "kep_consumer_lag_probe_timestamp_seconds", group=G) is None
    assert any(e["event"] == "lag probe failed" and e["error"] == "broker unreachable" for e in logs)


def test_an_unbound_worker_exports_no_partition_series() -> None:
    registry = CollectorRegistry()
    WorkerMetrics(G, registry=registry)
    s = scrape(registry)
    assert not [key for key in s if key[0].startswith("kep_consumer_") and "rebalances" not in key[0]]


class BlockingSource(StaticSource):
    """A source whose answers wait for ``gate``, as a Kafka client call stuck behind the poll loop would."""

    def __init__(self, states: list[PartitionState]) -> None:
        super().__init__(states)
        self.gate = threading.Event()
        self.gate.set()

    def partition_states(self) -> list[PartitionState]:
        self.gate.wait(30)
        return list(self.states)


def test_a_source_that_hangs_does_not_hang_the_scrape_and_its_last_snapshot_is_served() -> None:
    source = BlockingSource([state(0, committed=1, processed=1, log_end=4)])
    registry = CollectorRegistry()
    WorkerMetrics(G, registry=registry).bind(source, source_timeout_s=0.2)
    assert sample(scrape(registry), "kep_consumer_lag_messages", group=G, topic="orders", partition=0) == 3
    source.gate.clear()
    source.states = [state(0, committed=4, processed=4, log_end=4)]
    try:
        with structlog.testing.capture_logs() as logs:
            started = time.monotonic()
            s = scrape(registry)
            assert time.monotonic() - started < 2.0
        assert (
            sample(s, "kep_consumer_lag_messages", group=G, topic="orders", partition=0) == 3
        )  # the last one
        assert any(e["event"] == "worker state source did not answer in time" for e in logs)
    finally:
        source.gate.set()
    wait_until(
        lambda: (
            sample(scrape(registry), "kep_consumer_lag_messages", group=G, topic="orders", partition=0) == 0
        ),
        timeout=10,
        message="the fresh snapshot once the source answers",
    )


def test_a_source_that_hangs_from_the_start_yields_no_partition_series() -> None:
    source = BlockingSource([state(0, committed=1, log_end=4)])
    source.gate.clear()
    registry = CollectorRegistry()
    WorkerMetrics(G, registry=registry).bind(source, source_timeout_s=0.1)
    try:
        s = scrape(registry)
        assert sample(s, "kep_consumer_assigned_partitions", group=G) is None
    finally:
        source.gate.set()


def test_negative_durations_are_refused_by_name() -> None:
    with pytest.raises(MetricsError, match="bind: durations must be >= 0, got probe_timeout_s=-1"):
        WorkerMetrics(G, registry=CollectorRegistry()).bind(StaticSource(), probe_timeout_s=-1)


def test_a_snapshot_older_than_the_limit_is_not_served(monkeypatch: pytest.MonkeyPatch) -> None:
    from kep.consumers.metrics import collector

    source = BlockingSource([state(0, committed=1, processed=1, log_end=4)])
    registry = CollectorRegistry()
    WorkerMetrics(G, registry=registry).bind(source, source_timeout_s=0.1)
    assert sample(scrape(registry), "kep_consumer_assigned_partitions", group=G) == 1
    monkeypatch.setattr(collector, "SNAPSHOT_MAX_AGE_S", 0.0)
    source.gate.clear()
    try:
        assert sample(scrape(registry), "kep_consumer_assigned_partitions", group=G) is None
    finally:
        source.gate.set()
