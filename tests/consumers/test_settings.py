"""Worker settings: explicit arguments win over the YAML file, which wins over the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from kep.consumers.errors import ConfigError
from kep.consumers.settings import load_settings

pytestmark = pytest.mark.unit


def test_arguments_win_over_the_file_which_wins_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEP_MAX_IN_FLIGHT", "11")
    monkeypatch.setenv("KEP_COMMIT_EVERY", "22")
    monkeypatch.setenv("KEP_WORKERS", "33")
    monkeypatch.setenv("KEP_KAFKA_BOOTSTRAP_SERVERS", "env:9092")
    config = tmp_path / "worker.yaml"
    config.write_text("commit_every: 44\nworkers: 55\nkafka:\n  bootstrap_servers: file:9092\n")
    settings, kafka = load_settings(config, workers=66)
    assert settings.max_in_flight == 11  # environment only
    assert settings.commit_every == 44  # the file over the environment
    assert settings.workers == 66  # the argument over both
    assert kafka.bootstrap_servers == "file:9092"


def test_a_wrong_key_or_value_names_the_file_and_the_key(tmp_path: Path) -> None:
    config = tmp_path / "worker.yaml"
    config.write_text("max_in_flight: lots\nnot_a_setting: 1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    message = str(info.value)
    assert str(config) in message and "max_in_flight" in message and "not_a_setting" in message


def test_invalid_yaml_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "worker.yaml"
    config.write_text("workers: [1,\n")
    with pytest.raises(ConfigError, match="worker.yaml: cannot read worker config"):
        load_settings(config)


def test_secrets_never_show(tmp_path: Path) -> None:
    config = tmp_path / "worker.yaml"
    config.write_text(
        "kafka:\n  sasl_username: svc\n  sasl_password: hunter2\n  security_protocol: SASL_SSL\n"
    )
    _, kafka = load_settings(config)
    assert "hunter2" not in repr(kafka) and "hunter2" not in str(kafka)
    assert kafka.as_librdkafka_dict()["sasl.password"] == "hunter2"
    with pytest.raises(ConfigError) as info:
        load_settings(config, kafka={"security_protocol": "NOPE"})
    assert "hunter2" not in str(info.value)


def _consumer_config(**overrides: object) -> dict[str, object]:
    from kep.consumers.runtime.plan import WorkerPlan
    from kep.consumers.settings import ConsumerSettings
    from kep.topology.model import Topology
    from kep.topology.settings import KafkaSettings

    settings = ConsumerSettings(**overrides)  # type: ignore[arg-type]
    plan = WorkerPlan("g", settings, KafkaSettings(), Topology(), None, ("t",), {})
    return plan.consumer_config()


def test_the_consumer_group_protocol_sends_no_classic_only_key_and_librdkafka_accepts_it() -> None:
    from confluent_kafka import Consumer

    conf = _consumer_config(
        group_protocol="consumer", group_remote_assignor="uniform", session_timeout_ms=6000
    )
    assert conf["group.protocol"] == "consumer" and conf["group.remote.assignor"] == "uniform"
    assert not {"session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy"} & set(conf)
    Consumer(conf).close()  # librdkafka refuses to create a consumer=protocol consumer with classic keys


def test_the_classic_protocol_is_the_default_and_keeps_its_keys() -> None:
    conf = _consumer_config(session_timeout_ms=6000)
    assert "group.protocol" not in conf
    assert (
        conf["session.timeout.ms"] == 6000 and conf["partition.assignment.strategy"] == "cooperative-sticky"
    )


def test_a_remote_assignor_needs_the_consumer_protocol(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="group_remote_assignor needs group_protocol=consumer"):
        load_settings(None, group_remote_assignor="range")
