"""``EventProducer.publish_batch``: every member carries the batch id and size; refusals send nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kep.producers import EventProducer, InvalidBatchError
from kep.producers import headers as h
from kep.topology import KafkaSettings
from shop.orders import OrderPlaced
from shop.samples import sample_events
from tests.producers._support import ORDER, topology_of
from tests.support.kafka import read_topic

pytestmark = pytest.mark.integration


def _orders(n: int) -> list[OrderPlaced]:
    return [e for e in sample_events(n, seed=3, kind="orders") if isinstance(e, OrderPlaced)]


def test_members_carry_the_batch_id_and_size(kafka: str, topic_factory: Callable[..., str]) -> None:
    topic = topic_factory(partitions=3)
    events = _orders(12)
    with EventProducer(KafkaSettings(bootstrap_servers=kafka), topology_of((topic, 3, [ORDER]))) as producer:
        report = producer.publish_batch(events, batch_id="batch-7")
    assert report.batch_id == "batch-7" and report.size == 12
    records = read_topic(kafka, topic, expected=12)
    assert {h.header_str(r.headers(), h.BATCH_ID) for r in records} == {"batch-7"}
    assert {h.header_int(r.headers(), h.BATCH_SIZE) for r in records} == {12}
    assert {(r.partition(), r.offset()) for r in records} == {(x.partition, x.offset) for x in report.reports}


def test_a_new_batch_id_when_none_is_given(kafka: str, topic_factory: Callable[..., str]) -> None:
    topic = topic_factory()
    with EventProducer(KafkaSettings(bootstrap_servers=kafka), topology_of((topic, 1, [ORDER]))) as producer:
        first = producer.publish_batch(_orders(2))
        second = producer.publish_batch(_orders(2)[:1])
    assert first.batch_id != second.batch_id


@pytest.mark.parametrize(
    ("events", "batch_id", "reason"),
    [
        ([], None, "at least one event"),
        ("twice", None, "same id"),
        ("one", "", "1 to 200 characters"),
        ("one", "has space", "visible ASCII"),
    ],
)
def test_refusals_send_nothing(
    kafka: str, topic_factory: Callable[..., str], events: object, batch_id: str | None, reason: str
) -> None:
    topic = topic_factory()
    event = _orders(1)[0]
    members = {"twice": [event, event], "one": [event]}.get(events, []) if isinstance(events, str) else []
    with EventProducer(KafkaSettings(bootstrap_servers=kafka), topology_of((topic, 1, [ORDER]))) as producer:
        with pytest.raises(InvalidBatchError, match=reason):
            producer.publish_batch(members, batch_id=batch_id)
    read_topic(kafka, topic, expected=0)
