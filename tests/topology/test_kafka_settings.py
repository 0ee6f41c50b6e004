"""``KafkaSettings``: any librdkafka property through config and environment, secrets kept secret, the token
callback, and the rule that the passthrough never collides with what kep sets itself."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from kep.consumers.errors import ConfigError
from kep.consumers.runtime.plan import WorkerPlan
from kep.consumers.settings import ConsumerSettings, load_settings
from kep.producers import EventProducer
from kep.producers.settings import ProducerSettings
from kep.topology import KafkaSettings, TopicSpec, Topology
from shop.orders import LineItem, OrderPlaced
from tests.topology import _tokens

pytestmark = pytest.mark.unit

SECRET = "hunter2-" + uuid.uuid4().hex[:6]


def test_yaml_and_environment_reach_the_librdkafka_dict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEP_KAFKA_LIBRDKAFKA", '{"client.rack": "env-json", "socket.keepalive.enable": true}')
    monkeypatch.setenv("KEP_KAFKA_LIBRDKAFKA__ISOLATION_LEVEL", "read_uncommitted")
    monkeypatch.setenv("KEP_KAFKA_LIBRDKAFKA__SASL_OAUTHBEARER_CLIENT_SECRET", SECRET)
    config = tmp_path / "worker.yaml"
    config.write_text(
        "kafka:\n  librdkafka:\n    client.rack: file\n    ssl.endpoint.identification.algorithm: none\n"
        "    connections.max.idle.ms: 540000\n"
    )
    _, kafka = load_settings(config)
    conf = kafka.as_librdkafka_dict()
    assert conf["client.rack"] == "env-json"  # the environment over the file, key by key
    assert conf["ssl.endpoint.identification.algorithm"] == "none"  # the file's other keys stay
    assert conf["connections.max.idle.ms"] == 540000 and conf["socket.keepalive.enable"] is True
    assert conf["isolation.level"] == "read_uncommitted"  # one key per variable, _ for .
    assert conf["sasl.oauthbearer.client.secret"] == SECRET
    _, explicit = load_settings(config, kafka={"librdkafka": {"client.rack": "option"}})
    assert explicit.as_librdkafka_dict()["client.rack"] == "option"


@pytest.mark.parametrize(
    "key",
    [
        "sasl.oauthbearer.client.secret",
        "ssl.keystore.password",
        "ssl.key.pem",
        "sasl.oauthbearer.config",
        "sasl.oauthbearer.assertion.private.key.passphrase",
    ],
)
def test_values_of_secret_looking_keys_never_show(key: str, tmp_path: Path) -> None:
    kafka = KafkaSettings(librdkafka={key: SECRET, "client.rack": "az1"})
    shown = f"{kafka!r} {kafka} {kafka.model_dump()} {kafka.model_dump_json()}"
    assert SECRET not in shown and "az1" in shown
    assert kafka.as_librdkafka_dict()[key] == SECRET  # in clear only for the client
    config = tmp_path / "worker.yaml"
    config.write_text(f"kafka:\n  librdkafka:\n    {key}: {SECRET}\n    linger.ms: 5\n    bad key: 1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert SECRET not in str(info.value) and "linger.ms" in str(info.value)
    with pytest.raises(ValueError) as direct:
        KafkaSettings(librdkafka={key: SECRET, "linger.ms": 5})
    assert SECRET not in str(direct.value)


def test_a_passthrough_key_kep_sets_is_refused_naming_what_to_use_instead() -> None:
    with pytest.raises(ValueError) as info:
        KafkaSettings(librdkafka={"sasl.password": "x", "enable.auto.commit": True, "linger.ms": 1})
    message = str(info.value)
    assert "'sasl.password': set it with sasl_password (KEP_KAFKA_SASL_PASSWORD)" in message
    assert "'enable.auto.commit': kep sets it itself: the worker commits only finished offsets" in message
    assert "'linger.ms': set it with the producer setting linger_ms (KEP_PRODUCER_LINGER_MS)" in message
    with pytest.raises(ValueError, match="'oauth_cb': a token callback is set with the oauth_cb setting"):
        KafkaSettings(librdkafka={"oauth_cb": "mod:fn"})
    with pytest.raises(ValueError, match="'Client.Rack': not a librdkafka property name"):
        KafkaSettings(librdkafka={"Client.Rack": "az1"})


def test_every_key_kep_sets_on_its_clients_is_refused_in_the_passthrough() -> None:
    """The list of refused keys follows the code: a key a producer or worker setting (or a guarantee) sets
    cannot be overridden, nor override, silently. Keys kep sets only as defaults stay open."""
    kafka = KafkaSettings(sasl_password="x", ssl_key_password="y", sasl_mechanism="PLAIN", sasl_username="u")
    kafka = kafka.model_copy(
        update={"ssl_ca_location": "a", "ssl_certificate_location": "b", "ssl_key_location": "c"}
    )
    worker = WorkerPlan(
        group="g",
        settings=ConsumerSettings(group_instance_id="pod-0"),
        kafka=kafka,
        topology=Topology(topics=()),
        group_spec=None,
        main_topics=(),
        tiers={},
    )
    set_by_kep = (
        set(kafka.as_librdkafka_dict())
        | set(ProducerSettings().as_librdkafka_dict())
        | set(worker.consumer_config())
    )
    open_defaults = {"log.connection.close"}
    for key in sorted(set_by_kep - open_defaults):
        with pytest.raises(ValueError, match=f"'{key}'"):
            KafkaSettings(librdkafka={key: "1"})
    for key in open_defaults:
        assert KafkaSettings(librdkafka={key: True}).as_librdkafka_dict()[key] is True


def test_an_environment_value_that_is_not_json_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEP_KAFKA_LIBRDKAFKA", '{"sasl.oauthbearer.client.secret": ' + SECRET)
    with pytest.raises(ConfigError) as info:
        load_settings(None)
    assert 'field "librdkafka"' in str(info.value) and SECRET not in str(info.value)


def test_the_token_callback_is_a_dotted_path_or_a_function_and_every_client_calls_it() -> None:
    oauth = {
        "bootstrap_servers": "127.0.0.1:1",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "OAUTHBEARER",
        "librdkafka": {"sasl.oauthbearer.config": "region=eu-west-1"},
    }
    by_path = KafkaSettings(oauth_cb="tests.topology._tokens:token", **oauth)  # type: ignore[arg-type]
    assert by_path.oauth_cb is _tokens.token
    assert KafkaSettings(oauth_cb=_tokens.token, **oauth).as_librdkafka_dict()["oauth_cb"] is _tokens.token  # type: ignore[arg-type]
    _tokens.CALLS.clear()
    AdminClient(by_path.as_librdkafka_dict())  # a real librdkafka client asks for its first token
    topology = Topology(
        topics=(TopicSpec(name="orders", partitions=1, value_schema=("kep.orders.OrderPlaced",)),)
    )
    EventProducer(by_path, topology).close(0)
    assert _tokens.CALLS == ["region=eu-west-1", "region=eu-west-1"]
    with pytest.raises(ValueError, match="oauth_cb"):
        KafkaSettings(oauth_cb="no_such_module_kep:token")  # type: ignore[arg-type]


def test_a_passthrough_value_reaches_librdkafka() -> None:
    AdminClient(
        KafkaSettings(bootstrap_servers="127.0.0.1:1", librdkafka={"client.rack": "az1"}).as_librdkafka_dict()
    )
    with pytest.raises(KafkaException, match="isolation.level"):
        AdminClient(KafkaSettings(librdkafka={"isolation.level": "bogus"}).as_librdkafka_dict())


@pytest.mark.integration
def test_a_producer_with_passthrough_properties_publishes(kafka: str, topic_factory: object) -> None:
    topic = topic_factory()  # type: ignore[operator]
    settings = KafkaSettings(
        bootstrap_servers=kafka,
        librdkafka={
            "client.rack": "use1-az1",
            "socket.keepalive.enable": True,
            "connections.max.idle.ms": 540000,
        },
    )
    topology = Topology(
        topics=(TopicSpec(name=topic, partitions=1, value_schema=("kep.orders.OrderPlaced",)),)
    )
    item = LineItem(sku="S-1", quantity=1, unit_price_cents=1)
    order = OrderPlaced(order_id="o-1", customer_id="c-1", items=[item], amount_cents=1, currency="EUR")
    with EventProducer(settings, topology) as producer:
        report = producer.publish_and_wait(order, timeout=30)
    assert report.topic == topic
