import pytest
from pydantic import ValidationError

from kep.producers.settings import ProducerSettings

pytestmark = pytest.mark.unit


def test_guarantees_are_always_on() -> None:
    conf = ProducerSettings(linger_ms=20, compression="zstd").as_librdkafka_dict()
    assert conf["enable.idempotence"] is True
    assert conf["acks"] == "all"
    assert conf["partitioner"] == "murmur2_random"
    assert conf["allow.auto.create.topics"] is False
    assert conf["linger.ms"] == 20
    assert conf["compression.type"] == "zstd"


def test_defaults() -> None:
    settings = ProducerSettings()
    assert settings.linger_ms == 5
    assert settings.compression == "lz4"


def test_environment_and_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEP_PRODUCER_QUEUE_MAX_MESSAGES", "42")
    monkeypatch.setenv("KEP_PRODUCER_PUBLISH_BLOCK_TIMEOUT_S", "0.5")
    settings = ProducerSettings()
    assert settings.as_librdkafka_dict()["queue.buffering.max.messages"] == 42
    assert settings.publish_block_timeout_s == 0.5
    with pytest.raises(ValidationError):
        settings.linger_ms = 1  # type: ignore[misc]


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(ValidationError, match="lingerms"):
        ProducerSettings(lingerms=3)  # type: ignore[call-arg]
