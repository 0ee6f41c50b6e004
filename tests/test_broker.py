import pytest
from confluent_kafka import Consumer, Producer

from kep.broker import BrokerError, EmbeddedBroker

pytestmark = [pytest.mark.integration, pytest.mark.embedded]


def test_round_trip_on_session_broker(kafka: str, topic_factory) -> None:
    topic = topic_factory(partitions=2)
    producer = Producer({"bootstrap.servers": kafka, "enable.idempotence": True})
    producer.produce(topic, key=b"k", value=b"v", partition=1)
    assert producer.flush(10) == 0
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": "probe", "auto.offset.reset": "earliest"})
    from confluent_kafka import TopicPartition

    consumer.assign([TopicPartition(topic, 1, 0)])
    msg = None
    for _ in range(100):
        msg = consumer.poll(0.2)
        if msg is not None and msg.error() is None:
            break
    consumer.close()
    assert msg is not None and msg.value() == b"v"


def test_missing_binary_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALF_TANSU_BIN", "/nonexistent/tansu")
    with pytest.raises(BrokerError, match="embedded broker binary not found"):
        EmbeddedBroker().start()


def test_stop_is_clean() -> None:
    broker = EmbeddedBroker().start()
    assert broker.is_running()
    broker.stop()
    assert not broker.is_running()
