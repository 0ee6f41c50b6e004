"""Delayed events end to end, on real ``kep run`` workers (each also runs the delay forwarder): none handled
before its due time, all handled, each once, through a kill -9 of every worker; live events keep flowing while
many delayed ones wait; hostile delay headers do not stall a tier."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from kep.consumers.delays import DelayForwarder
from kep.producers import EventProducer
from kep.producers import headers as h
from kep.producers.delay import due_time_ms
from shop.orders import OrderPlaced
from shop.samples import sample_events
from tests.delays._support import DelaySetup, delay_setup, lateness_report
from tests.support.kafka import read_topic
from tests.support.wait import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _orders(n: int, seed: int) -> list[OrderPlaced]:
    return [e for e in sample_events(n, seed=seed, kind="orders") if isinstance(e, OrderPlaced)]


def _ok(report: Any, error: Any) -> None:
    assert error is None, error


def _publish_delayed(setup: DelaySetup, events: list[OrderPlaced], delays_s: list[float]) -> dict[str, int]:
    """Publish each event due ``delays_s`` from now; its due time in ms by event id."""
    due: dict[str, int] = {}
    with EventProducer(setup.kafka, setup.topology) as producer:
        start_ms = time.time_ns() // 1_000_000
        for event, delay in zip(events, delays_s, strict=True):
            at = datetime.fromtimestamp((start_ms + round(delay * 1000)) / 1000, tz=UTC)
            producer.publish(event, topic=setup.topic, deliver_at=at, on_delivery=_ok)
            due_ms = due_time_ms(at, None, 0)
            assert due_ms is not None
            due[event.event_id] = due_ms
        assert producer.flush(30) == 0
    return due


def test_delayed_events_are_never_early_all_handled_once_through_kill9_of_every_worker(
    kafka: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n = 300
    setup = delay_setup(kafka, tmp_path, tiers=("1s", "2s", "5s", "10s"))
    rng = random.Random(11)
    events = _orders(n, seed=3)
    delays_s = [rng.uniform(1.0, 20.0) for _ in events]
    workers = [setup.worker(tmp_path, f"worker-{i}").start() for i in range(2)]
    try:
        due = _publish_delayed(setup, events, delays_s)
        wait_until(lambda: setup.distinct() >= n // 4, timeout=90, interval=0.2, message="a quarter handled")
        handled_before_kill = setup.distinct()
        for worker in workers:
            worker.kill9()
        for worker in workers:
            worker.start()
        wait_until(lambda: setup.distinct() >= n, timeout=180, interval=0.5, message=f"{n} delayed events")
    finally:
        codes = [w.terminate(60) for w in workers]
    rows = setup.handled()
    early = [(event_id, due[event_id] - at) for event_id, at in rows if at < due[event_id]]
    assert not early, f"handled before their due time (event, ms early): {early[:10]}"
    assert handled_before_kill < n, "everything was handled before the kill: the kill proved nothing"
    assert len(rows) == n, f"{len(rows) - n} events handled twice"
    assert codes == [0, 0], [w.log() for w in workers]
    with capsys.disabled():
        lateness = [at - due[event_id] for event_id, at in rows]
        print("\n" + lateness_report("delayed 1-20 s, kill -9 of every worker midway", lateness))


def test_live_events_keep_flowing_while_many_delayed_events_wait(kafka: str, tmp_path: Path) -> None:
    setup = delay_setup(kafka, tmp_path, tiers=("1s", "30s", "10m"), partitions=1, tier_partitions=1)
    waiting = _orders(3000, seed=5)
    _publish_delayed(setup, waiting, [600.0 + i / 100 for i in range(len(waiting))])  # 10 min from now
    worker = setup.worker(tmp_path, "worker").start()
    try:
        short = _orders(20, seed=6)
        short_due = _publish_delayed(setup, short, [2.0] * len(short))
        live = _orders(200, seed=7)
        with EventProducer(setup.kafka, setup.topology) as producer:
            for event in live:
                producer.publish(event, topic=setup.topic, on_delivery=_ok)
            assert producer.flush(30) == 0
        wanted = {e.event_id for e in live} | set(short_due)
        wait_until(
            lambda: wanted <= {event_id for event_id, _ in setup.handled()},
            timeout=90,
            interval=0.2,
            message="live events and short delays handled",
        )
        handled = dict(setup.handled())
    finally:
        assert worker.terminate(60) == 0, worker.log()
    assert not {e.event_id for e in waiting} & set(handled), "a 10-minute delayed event was handled early"
    assert all(handled[event_id] >= due for event_id, due in short_due.items())


def _raw_tier_record(
    producer: Producer,
    setup: DelaySetup,
    tier: str,
    key: bytes,
    value: bytes,
    headers: list[tuple[str, bytes]],
) -> None:
    producer.produce(tier, value, key, headers=headers)


@pytest.mark.embedded
def test_hostile_delay_headers_go_to_the_dead_letter_topic_and_do_not_stall_the_tier(
    kafka: str, tmp_path: Path
) -> None:
    setup = delay_setup(kafka, tmp_path, tiers=("1s", "5s"), partitions=1, tier_partitions=1)
    tier = setup.delays.tier_list()[0].topic
    # A real delayed record, copied to build the hostile ones around it (same key, value and event headers).
    template = _orders(1, seed=9)[0]
    with EventProducer(setup.kafka, setup.topology) as producer:
        report = producer.publish_and_wait(template, topic=setup.topic, delay=0.5)
    assert report.topic == tier
    [msg] = read_topic(kafka, tier, expected=1)
    base = [(k, v) for k, v in msg.headers() or [] if k not in (h.DELAY_TOPIC, h.DELAY_DUE)]
    now = time.time_ns() // 1_000_000
    hostile = [
        [(h.DELAY_DUE, str(now).encode())],  # no destination
        [(h.DELAY_TOPIC, "ordérs".encode()), (h.DELAY_DUE, str(now).encode())],
        [(h.DELAY_TOPIC, b"not-a-topology-topic"), (h.DELAY_DUE, str(now).encode())],
        [(h.DELAY_TOPIC, setup.topic.encode()), (h.DELAY_DUE, b"9" * 10_000)],
        [(h.DELAY_TOPIC, setup.topic.encode()), (h.DELAY_DUE, "١٢٣".encode())],
        [(h.DELAY_TOPIC, setup.topic.encode()), (h.DELAY_DUE, str(2**63 - 1).encode())],  # far future
        [(h.DELAY_TOPIC, setup.topic.encode())],  # no due time
    ]
    raw = Producer({"bootstrap.servers": kafka, "enable.idempotence": True})
    for extra in hostile:
        _raw_tier_record(raw, setup, tier, msg.key(), msg.value(), [*base, *extra])
    assert raw.flush(30) == 0
    behind = _orders(30, seed=10)
    # after the hostile ones, on the same tier partition
    behind_due = _publish_delayed(setup, behind, [1.5] * len(behind))
    worker = setup.worker(tmp_path, "worker").start()
    try:
        wanted = set(behind_due) | {template.event_id}
        wait_until(
            lambda: wanted <= {event_id for event_id, _ in setup.handled()},
            timeout=90,
            interval=0.2,
            message="the delayed events behind the hostile records",
        )
        letters = read_topic(kafka, setup.delays.dlq_topic, expected=len(hostile), timeout=30)
    finally:
        assert worker.terminate(60) == 0, worker.log()
    assert len(letters) == len(hostile)
    reasons = [h.header_str(m.headers(), h.DELAY_ERROR) or "" for m in letters]
    assert all(reasons), reasons
    assert {m.value() for m in letters} == {msg.value()}  # the record itself, for an operator to look at
    assert "delayed record dead-lettered" in worker.log_path.read_text()
    # none of them reached the destination: only the template and the events behind
    read_topic(kafka, setup.topic, expected=len(wanted))


@pytest.mark.embedded
def test_forwarder_metrics_pending_per_tier_and_lateness(kafka: str, tmp_path: Path) -> None:
    setup = delay_setup(kafka, tmp_path, tiers=("1s", "30s", "10m"), partitions=1, tier_partitions=1)
    _publish_delayed(setup, _orders(50, seed=12), [700.0] * 50)
    short = _publish_delayed(setup, _orders(5, seed=13), [1.2] * 5)
    forwarder = DelayForwarder(
        setup.topology, setup.kafka, group_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}
    )
    thread = forwarder.start()
    registry = forwarder.metrics.registry
    try:
        wait_until(
            lambda: registry.get_sample_value("kep_delay_forward_lateness_seconds_count") == len(short),
            timeout=60,
            message="the short delays forwarded",
        )
        wait_until(
            lambda: registry.get_sample_value("kep_delay_pending_records", {"tier": "10m"}) == 50,
            timeout=30,
            message="50 records pending in the 10m tier",
        )
    finally:
        forwarder.stop()
        thread.join(30)
    assert registry.get_sample_value("kep_delay_pending_records", {"tier": "1s"}) == 0
    assert registry.get_sample_value("kep_delay_forwarded_records_total", {"to": "destination"}) == len(short)
    assert not thread.is_alive()
    read_topic(kafka, setup.topic, expected=len(short))
