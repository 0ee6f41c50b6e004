"""Tier selection, due times and the forwarder's decisions, with a fake clock (no broker)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from kep.consumers.delays import Deliver, Hold, Reject, Retier, Scheduled, leave_ms, next_step, schedule
from kep.consumers.delays.decide import forward_headers
from kep.producers import InvalidDelayError
from kep.producers import headers as h
from kep.producers.delay import delay_route, due_time_ms
from kep.topology import DelaySpec, Topology, TopologyError
from kep.topology.errors import ValidationProblems

pytestmark = pytest.mark.unit

NOW = 1_800_000_000_000  # the fake clock, ms
DELAYS = DelaySpec()  # 1s 5s 30s 2m 10m 1h 6h 1d
TOPICS = {"orders", "payments"}


def test_default_tiers_and_names() -> None:
    assert [t.topic for t in DELAYS.tier_list()] == [
        "kep.delay.1s", "kep.delay.5s", "kep.delay.30s", "kep.delay.2m",
        "kep.delay.10m", "kep.delay.1h", "kep.delay.6h", "kep.delay.1d",
    ]  # fmt: skip
    assert DELAYS.dlq_topic == "kep.delay.dlq"


@pytest.mark.parametrize(
    ("remaining", "tier"),
    [(0.2, "1s"), (1.0, "1s"), (4.999, "1s"), (5.0, "5s"), (29.0, "5s"), (30, "30s"), (119, "30s"),
     (600, "10m"), (3599, "10m"), (86_400, "1d"), (40 * 86_400, "1d")],
)  # fmt: skip
def test_tier_is_the_largest_not_longer_than_the_remaining_delay(remaining: float, tier: str) -> None:
    assert DELAYS.tier_for(remaining).suffix == tier


def test_due_time_from_delay_or_deliver_at() -> None:
    assert due_time_ms(None, 10, NOW) == NOW + 10_000
    assert due_time_ms(None, timedelta(minutes=2), NOW) == NOW + 120_000
    at = datetime.fromtimestamp((NOW + 5_000) / 1000, tz=UTC)
    assert due_time_ms(at, None, NOW) == NOW + 5_000
    assert due_time_ms(at.astimezone(timezone(timedelta(hours=5))), None, NOW) == NOW + 5_000
    assert due_time_ms(None, None, NOW) is None


def test_now_or_past_is_not_delayed() -> None:
    assert due_time_ms(None, 0, NOW) is None
    assert due_time_ms(datetime.fromtimestamp(NOW / 1000 - 60, tz=UTC), None, NOW) is None


@pytest.mark.parametrize(
    ("deliver_at", "delay", "says"),
    [
        (datetime(2030, 1, 1), None, "no time zone"),  # noqa: DTZ001 - the naive datetime under test
        (datetime(2030, 1, 1, tzinfo=UTC), 5, "not both"),
        (None, -1, "non-negative"),
        (None, float("nan"), "non-negative"),
        (None, True, "not a duration"),
        (None, "10s", "timedelta or seconds"),
    ],
)
def test_bad_delays_are_refused(deliver_at: datetime | None, delay: object, says: str) -> None:
    with pytest.raises(InvalidDelayError, match=says):
        due_time_ms(deliver_at, delay, NOW)  # type: ignore[arg-type]


def test_delay_route_names_destination_and_due_time() -> None:
    route = delay_route(DELAYS, "orders", NOW + 45_000, NOW)
    assert route.topic == "kep.delay.30s"
    assert dict(route.headers) == {h.DELAY_TOPIC: b"orders", h.DELAY_DUE: str(NOW + 45_000).encode()}


def test_delay_route_refuses_without_delays_section_or_past_max_delay() -> None:
    with pytest.raises(InvalidDelayError, match="no delays: section"):
        delay_route(None, "orders", NOW + 1000, NOW)
    short = DelaySpec(max_delay="1h")
    with pytest.raises(InvalidDelayError, match="max_delay"):
        delay_route(short, "orders", NOW + 3_600_001, NOW)


def _headers(topic: bytes | None = b"orders", due: bytes | None = None) -> list[tuple[str, bytes | None]]:
    pairs: list[tuple[str, bytes | None]] = [(h.EVENT_TYPE, b"kep.orders.OrderPlaced")]
    if topic is not None:
        pairs.append((h.DELAY_TOPIC, topic))
    if due is not None:
        pairs.append((h.DELAY_DUE, due))
    return pairs


def test_schedule_reads_destination_and_due_time() -> None:
    due = str(NOW + 7000).encode()
    assert schedule(_headers(due=due), TOPICS, NOW, DELAYS.max_delay) == Scheduled("orders", NOW + 7000)


@pytest.mark.parametrize(
    ("topic", "due", "says"),
    [
        (None, b"1", "no kep-delay-topic"),
        (b"orders", None, "no kep-delay-due"),
        ("ordérs".encode(), b"1", "not ASCII"),
        (b"kep.delay.1s", b"1", "not a topic of the topology"),
        (b"elsewhere", b"1", "not a topic of the topology"),
        (b"orders", "١٢٣".encode(), "not a time"),
        (b"orders", b"9" * 5000, "not a time"),
        (b"orders", b"-5", "not a time"),
        (b"orders", b" 12", "not a time"),
        (b"orders", str(2**63 - 1).encode(), "more than max_delay"),
    ],
)
def test_hostile_delay_headers_are_rejected_with_a_reason(
    topic: bytes | None, due: bytes | None, says: str
) -> None:
    outcome = schedule(_headers(topic, due), TOPICS, NOW, DELAYS.max_delay)
    assert isinstance(outcome, Reject) and says in outcome.reason
    assert len(outcome.reason) < 300  # a 5,000-digit header is cut in the reason


def test_a_tier_record_waits_the_tier_from_when_it_was_written_and_never_past_its_due_time() -> None:
    assert leave_ms(NOW, NOW + 200, 30, NOW + 100_000) == NOW + 30_000
    # a producer clock ahead of ours: counted from when the forwarder first saw it
    assert leave_ms(NOW + 3_600_000, NOW, 30, NOW + 100_000) == NOW + 30_000
    assert leave_ms(NOW, NOW, 30, NOW + 10_000) == NOW + 10_000
    assert leave_ms(-1, NOW, 5, NOW + 60_000) == NOW + 5_000  # no timestamp


def test_next_step_deliver_hold_or_smaller_tier() -> None:
    record = Scheduled("orders", NOW + 65_000)
    assert next_step(DELAYS, record, NOW) == Retier("kep.delay.30s")
    assert next_step(DELAYS, record, NOW + 35_000) == Retier("kep.delay.30s")  # 30 s left
    assert next_step(DELAYS, record, NOW + 35_001) == Retier("kep.delay.5s")
    assert next_step(DELAYS, record, NOW + 64_500) == Hold(NOW + 65_000)
    assert next_step(DELAYS, record, NOW + 65_000) == Deliver("orders")
    assert next_step(DELAYS, record, NOW + 99_000) == Deliver("orders")


def test_walking_the_tiers_with_a_fake_clock_never_delivers_early() -> None:
    for delay_ms in (1, 999, 1000, 4_321, 65_000, 3_599_999, 86_400_000 * 3 + 17):
        now, due = NOW, NOW + delay_ms
        record = Scheduled("orders", due)
        hops = 0
        while True:
            step = next_step(DELAYS, record, now)
            if isinstance(step, Deliver):
                break
            if isinstance(step, Hold):
                now = step.until_ms
                continue
            tier = next(t for t in DELAYS.tier_list() if t.topic == step.topic)
            now = leave_ms(now + 3, now + 5, tier.delay_seconds, due)  # written 3 ms later, read 5 ms later
            hops += 1
        assert now >= due
        assert now == due  # the hop latency is absorbed: the last hop is held until the due time
        assert hops < 30


def test_forward_headers_drop_the_delay_headers_only() -> None:
    pairs = [*_headers(due=b"5"), ("x-mine", b"1")]
    assert forward_headers(pairs) == [(h.EVENT_TYPE, b"kep.orders.OrderPlaced"), ("x-mine", b"1")]


def test_topology_delays_section_derives_tier_topics() -> None:
    topology = Topology.model_validate(
        {
            "topics": [{"name": "orders", "partitions": 3, "value_schema": "kep.orders.OrderPlaced"}],
            "delays": {"tiers": ["1s", "10s"], "prefix": "shop.delay", "partitions": 2},
        }
    )
    derived = [d for d in topology.derived_topics() if d.kind == "delay"]
    assert [d.spec.name for d in derived] == ["shop.delay.1s", "shop.delay.10s", "shop.delay.dlq"]
    assert {d.spec.partitions for d in derived} == {2}
    assert {d.group for d in derived} == {"kep-delays"}
    assert Topology().delays is None


@pytest.mark.parametrize(
    ("delays", "says"),
    [
        ({"tiers": ["10s", "1s"]}, "shortest first"),
        ({"tiers": ["1s", "1000ms"]}, "repeat"),
        ({"tiers": []}, "at least one"),
        ({"tiers": [5]}, "unit"),
        ({"prefix": "bad name"}, "Kafka allows"),
        ({"prefix": "orders"}, "orders.1s"),
    ],
)
def test_bad_delays_sections_are_refused(delays: dict[str, object], says: str) -> None:
    body = {
        "topics": [{"name": "orders", "partitions": 1}, {"name": "orders.1s", "partitions": 1}],
        "delays": delays,
    }
    with pytest.raises((TopologyError, ValidationProblems, ValueError), match=says):
        Topology.model_validate(body)


def test_delay_topics_take_the_largest_record_size_of_the_topics_and_outlast_the_largest_tier() -> None:
    topics = [
        {"name": "orders", "partitions": 1, "configs": {"max.message.bytes": "2000000"}},
        {"name": "payments", "partitions": 1, "configs": {"max.message.bytes": "3000000"}},
    ]
    topology = Topology.model_validate({"topics": topics, "delays": {}})
    sizes = {d.spec.configs.get("max.message.bytes") for d in topology.derived_topics() if d.kind == "delay"}
    assert sizes == {"3000000"}
    own = Topology.model_validate(
        {"topics": topics, "delays": {"topic_configs": {"max.message.bytes": "5000000"}}}
    )
    assert {d.spec.configs["max.message.bytes"] for d in own.derived_topics() if d.kind == "delay"} == {
        "5000000"
    }
    with pytest.raises(ValueError, match="expire before they are due"):
        DelaySpec.model_validate({"tiers": ["1s", "1d"], "topic_configs": {"retention.ms": "3600000"}})
