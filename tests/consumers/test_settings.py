"""Worker settings: explicit arguments (command-line options) > environment > the YAML file > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from kep.consumers.errors import ConfigError
from kep.consumers.settings import load_settings
from tests.support.hostile import yaml_alias_bomb

pytestmark = pytest.mark.unit


def test_options_win_over_the_environment_which_wins_over_the_file_which_wins_over_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEP_COMMIT_EVERY", "22")
    monkeypatch.setenv("KEP_WORKERS", "33")
    monkeypatch.setenv("KEP_KAFKA_CLIENT_ID", "env-client")
    monkeypatch.setenv("KEP_KAFKA_BOOTSTRAP_SERVERS", "env:9092")
    config = tmp_path / "worker.yaml"
    config.write_text(
        "max_in_flight: 11\ncommit_every: 44\nworkers: 55\n"
        "kafka:\n  bootstrap_servers: file:9092\n  client_id: file-client\n  ssl_ca_location: /file/ca.pem\n"
    )
    settings, kafka = load_settings(
        config, workers=66, group=None, kafka={"bootstrap_servers": "option:9092", "client_id": None}
    )
    assert settings.max_in_flight == 11  # the file only
    assert settings.commit_every == 22  # the environment over the file
    assert settings.workers == 66  # the option over both
    assert settings.group is None and settings.drain_timeout_s == 25.0  # nobody: the default
    assert kafka.bootstrap_servers == "option:9092"  # the option over the environment and the file
    assert kafka.client_id == "env-client"  # an option not given (None) leaves the environment's value
    assert kafka.ssl_ca_location == "/file/ca.pem"


def test_the_same_order_holds_for_every_settings_class(monkeypatch: pytest.MonkeyPatch) -> None:
    from kep.producers.settings import ProducerSettings
    from kep.schemas.settings import KepSettings
    from kep.topology.settings import KafkaSettings

    assert issubclass(ProducerSettings, KepSettings) and issubclass(KafkaSettings, KepSettings)
    monkeypatch.setenv("KEP_PRODUCER_LINGER_MS", "7")
    assert ProducerSettings.load({"linger_ms": 9, "batch_size": 10}).linger_ms == 7
    assert ProducerSettings.load({"linger_ms": 9, "batch_size": 10}).batch_size == 10
    assert ProducerSettings.load({"linger_ms": 9}, linger_ms=8).linger_ms == 8


def test_a_kafka_section_that_is_not_a_mapping_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "worker.yaml"
    config.write_text("kafka: 127.0.0.1:9092\n")
    with pytest.raises(ConfigError, match="worker.yaml: 'kafka' must be a mapping, got str"):
        load_settings(config)


def test_a_wrong_key_or_value_names_the_file_and_the_key(tmp_path: Path) -> None:
    config = tmp_path / "worker.yaml"
    config.write_text("max_in_flight: lots\nnot_a_setting: 1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    message = str(info.value)
    assert str(config) in message and "max_in_flight" in message and "not_a_setting" in message
    config.write_text("kafka:\n  security_protocol: NOPE\n")
    with pytest.raises(ConfigError, match="kafka.security_protocol: Input should be"):
        load_settings(config)


def test_invalid_yaml_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "worker.yaml"
    config.write_text("workers: [1,\n")
    with pytest.raises(ConfigError, match="worker.yaml: cannot read worker config"):
        load_settings(config)


def test_a_yaml_alias_bomb_is_refused_at_once_with_its_line(tmp_path: Path) -> None:
    """Without the guard, ``yaml.safe_load`` expands 9**9 nodes here and the worker never starts."""
    config = tmp_path / "worker.yaml"
    config.write_text(yaml_alias_bomb(first_line="workers: 2"))
    with pytest.raises(ConfigError, match=r"worker.yaml \(line 3\): YAML aliases \(\*a\) are not allowed"):
        load_settings(config)


def test_deep_nesting_in_a_worker_config_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "worker.yaml"
    config.write_text("kafka: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested more than 32 levels deep; a worker config"):
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


def test_schema_registry_settings_come_from_their_section_below_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kep.consumers.settings import load_schema_registry_settings

    monkeypatch.setenv("KEP_SCHEMA_REGISTRY_AUTO_REGISTER", "false")
    config = tmp_path / "worker.yaml"
    config.write_text(
        "schema_registry_url: http://registry:8081\n"
        "schema_registry:\n  subject_strategy: topic_name\n  auto_register: true\n"
        "  username: svc\n  password: hunter2\n"
    )
    settings, _ = load_settings(config)  # the worker keys still load; the section is not one of them
    assert settings.schema_registry_url == "http://registry:8081"
    registry = load_schema_registry_settings(config, timeout_s=3)
    assert registry.subject_strategy == "topic_name"  # the file
    assert registry.auto_register is False  # the environment over the file
    assert registry.timeout_s == 3  # explicit over both
    assert "hunter2" not in repr(registry)
    assert registry.client_config("http://registry:8081")["basic.auth.user.info"] == "svc:hunter2"
    config.write_text("schema_registry:\n  password: hunter2\n  subject_strategy: nope\n")
    with pytest.raises(ConfigError) as info:
        load_schema_registry_settings(config)
    assert "schema_registry.subject_strategy" in str(info.value) and "hunter2" not in str(info.value)


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
