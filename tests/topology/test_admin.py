"""plan/apply against the session broker. Every test owns its topics (uuid-suffixed names)."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest
import structlog
from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from kep.broker import free_port
from kep.topology import (
    AlterConfigs,
    ApplyError,
    ConfigChange,
    CreateTopic,
    IncreasePartitions,
    KafkaSettings,
    PartitionGrowthUnsupportedError,
    Plan,
    PlanError,
    RefusedChangeError,
    TopicSpec,
    apply,
    plan,
)
from kep.topology._actions import KEY_REMAPPING
from kep.topology.admin import _admin as _admin_of
from tests.support.kafka import create_topic
from tests.support.wait import wait_until
from tests.topology.conftest import TopologyFile

pytestmark = pytest.mark.integration


def partitions(admin: AdminClient, topic: str) -> int:
    return len(admin.list_topics(topic, timeout=10).topics[topic].partitions)


def configs(admin: AdminClient, topic: str) -> dict[str, str | None]:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return {k: v.value for k, v in admin.describe_configs([resource])[resource].result(10).items()}


def test_apply_creates_declared_and_derived_topics(
    topology_file: TopologyFile, settings: KafkaSettings, admin: AdminClient
) -> None:
    topology = topology_file.write()
    planned = plan(topology, settings)
    assert [a.topic for a in planned.actions] == topology_file.all_names()
    assert all(isinstance(a, CreateTopic) for a in planned.actions)

    result = apply(planned, settings)

    assert list(result.created) == topology_file.all_names()
    existing = admin.list_topics(timeout=10).topics
    o, p = topology_file.orders, topology_file.payments
    assert {name: len(existing[name].partitions) for name in topology_file.all_names()} == {
        o: 3,
        p: 2,
        f"{o}.billing.retry.1s": 3,
        f"{o}.billing.retry.10s": 3,
        f"{o}.billing.dlq": 3,
        f"{o}.shipping.retry.5s": 3,
        f"{p}.shipping.retry.5s": 2,
    }
    assert f"{p}.shipping.dlq" not in existing  # dead letters off for shipping
    assert configs(admin, o)["retention.ms"] == "3600000"
    assert configs(admin, f"{o}.billing.retry.10s")["cleanup.policy"] == "delete"
    assert configs(admin, f"{o}.billing.dlq")["retention.ms"] == str(28 * 86_400_000)


def test_second_apply_finds_nothing_to_do(topology_file: TopologyFile, settings: KafkaSettings) -> None:
    topology = topology_file.write()
    assert apply(plan(topology, settings), settings).changed

    again = plan(topology, settings)

    assert again.is_empty and not again.has_changes
    assert set(again.unchanged) == set(topology_file.all_names())
    assert not apply(again, settings).changed


def test_config_change_is_planned_and_applied(
    topology_file: TopologyFile, settings: KafkaSettings, admin: AdminClient
) -> None:
    apply(plan(topology_file.write(retention_ms=3_600_000), settings), settings)
    changed = topology_file.write(retention_ms=7_200_000)

    planned = plan(changed, settings)

    assert planned.actions == (
        AlterConfigs(topology_file.orders, (ConfigChange("retention.ms", "3600000", "7200000"),)),
    )
    result = apply(planned, settings)
    assert result.altered == (topology_file.orders,)
    assert configs(admin, topology_file.orders)["retention.ms"] == "7200000"
    assert plan(changed, settings).is_empty


def test_config_set_out_of_band_is_put_back(
    topology_file: TopologyFile, settings: KafkaSettings, admin: AdminClient
) -> None:
    topology = topology_file.write()
    apply(plan(topology, settings), settings)
    dlq = f"{topology_file.orders}.billing.dlq"
    drifted = Plan(actions=(AlterConfigs(dlq, (ConfigChange("retention.ms", None, "1000"),)),))
    apply(drifted, settings)

    planned = plan(topology, settings)

    assert planned.actions == (
        AlterConfigs(dlq, (ConfigChange("retention.ms", "1000", str(28 * 86_400_000)),)),
    )
    apply(planned, settings)
    assert configs(admin, dlq)["retention.ms"] == str(28 * 86_400_000)


def test_shrinking_partitions_is_refused(
    topology_file: TopologyFile, settings: KafkaSettings, admin: AdminClient
) -> None:
    apply(plan(topology_file.write(orders_partitions=3), settings), settings)
    planned = plan(topology_file.write(orders_partitions=2, retention_ms=60_000), settings)

    shrinks = [r for r in planned.refusals if r.kind == "shrink_partitions"]
    assert {r.topic for r in shrinks} == {
        n for n in topology_file.all_names() if n.startswith(topology_file.orders)
    }
    assert all((r.current, r.desired) == (3, 2) for r in shrinks)
    with pytest.raises(RefusedChangeError) as info:
        apply(planned, settings)

    message = str(info.value)
    assert f"topic {topology_file.orders} has 3 partitions and the topology asks for 2" in message
    assert "Kafka cannot remove partitions" in message
    assert configs(admin, topology_file.orders)["retention.ms"] == "3600000", "nothing applied"
    assert partitions(admin, topology_file.orders) == 3


def test_replication_factor_change_is_refused(topology_file: TopologyFile, settings: KafkaSettings) -> None:
    apply(plan(topology_file.write(replication_factor=1), settings), settings)

    planned = plan(topology_file.write(replication_factor=2), settings)

    refused = {r.topic: r for r in planned.refusals if r.kind == "replication_factor"}
    assert topology_file.orders in refused
    assert (refused[topology_file.orders].current, refused[topology_file.orders].desired) == (1, 2)
    with pytest.raises(
        RefusedChangeError, match="replication factor 1 .* asks for 2: changing it is not supported"
    ):
        apply(planned, settings)


def test_growing_partitions_on_a_broker_without_create_partitions_is_a_clear_error(
    topology_file: TopologyFile, settings: KafkaSettings, admin: AdminClient, broker_is_tansu: bool
) -> None:
    if not broker_is_tansu:
        pytest.skip(
            "this broker implements CreatePartitions; growth is tested by test_growing_partitions_adds_them"
        )
    apply(plan(topology_file.write(orders_partitions=2), settings), settings)
    planned = plan(topology_file.write(orders_partitions=4), settings)
    orders = topology_file.orders
    assert IncreasePartitions(orders, 2, 4) in planned.actions

    with pytest.raises(PartitionGrowthUnsupportedError) as info:
        apply(Plan(actions=(IncreasePartitions(orders, 2, 4),)), settings)
    assert str(info.value) == (
        f"the broker cannot grow partitions: topic {orders} has 2 and the topology asks for 4, "
        "but the broker does not support CreatePartitions (_UNSUPPORTED_FEATURE); "
        "recreate the topic with the new count or keep 2; nothing was changed"
    )
    assert (info.value.topic, info.value.code, info.value.name) == (
        orders,
        KafkaError._UNSUPPORTED_FEATURE,
        "_UNSUPPORTED_FEATURE",
    )
    assert isinstance(info.value, ApplyError)

    with pytest.raises(PartitionGrowthUnsupportedError) as info:
        apply(planned, settings)  # the source and its derived topics: one error listing them all
    message = str(info.value)
    unsupported = "the broker does not support CreatePartitions"
    assert message.startswith(f"the broker cannot grow partitions: {unsupported}")
    assert f"{orders} 2 -> 4, {orders}.billing.retry.1s 2 -> 4" in message
    assert f"{orders}.billing.dlq 2 -> 4" in message
    assert partitions(admin, orders) == 2


def test_growing_partitions_adds_them(
    topology_file: TopologyFile, settings: KafkaSettings, admin: AdminClient, broker_is_tansu: bool
) -> None:
    if broker_is_tansu:
        pytest.skip("the embedded broker has no CreatePartitions; see the clear-error test")
    apply(plan(topology_file.write(orders_partitions=2), settings), settings)
    grown = topology_file.write(orders_partitions=4)
    planned = plan(grown, settings)
    growth = IncreasePartitions(topology_file.orders, 2, 4)
    assert growth in planned.actions
    assert growth.describe() == f"grow {topology_file.orders} from 2 to 4 partitions ({KEY_REMAPPING})"

    with structlog.testing.capture_logs() as logs:
        result = apply(planned, settings)

    assert topology_file.orders in result.grown
    assert partitions(admin, topology_file.orders) == 4
    assert partitions(admin, f"{topology_file.orders}.billing.dlq") == 4
    assert plan(grown, settings).is_empty
    warned = {e["topic"] for e in logs if e["event"] == "growing partitions" and e["log_level"] == "warning"}
    assert topology_file.orders in warned and all(
        e.get("warning") == KEY_REMAPPING for e in logs if "warning" in e
    )


def test_the_replication_factor_defaults_to_the_brokers_and_is_compared_only_when_set(
    topology_file: TopologyFile, settings: KafkaSettings, admin: AdminClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: dict[str, int] = {}
    create_topics = AdminClient.create_topics

    def recording(self: AdminClient, new_topics: list[NewTopic], **kwargs: Any) -> Any:
        sent.update({t.topic: t.replication_factor for t in new_topics})
        return create_topics(self, new_topics, **kwargs)

    monkeypatch.setattr(AdminClient, "create_topics", recording)
    unset = topology_file.write_without_replication_factor()
    assert unset.topics[0].replication_factor is None

    created = apply(plan(unset, settings), settings)

    assert set(created.created) == set(topology_file.all_names())
    assert set(sent.values()) == {-1}, "the broker's default.replication.factor, not 1"
    described = admin.describe_topics(TopicCollection([topology_file.orders]))[topology_file.orders].result(
        10
    )
    assert {len(p.replicas) for p in described.partitions} == {1}  # this broker's default
    assert plan(unset, settings).is_empty  # nothing to compare against
    refused = plan(topology_file.write(replication_factor=2), settings).refusals
    assert {(r.topic, r.current, r.desired) for r in refused if r.kind == "replication_factor"} >= {
        (topology_file.orders, 1, 2)
    }


def test_plan_and_apply_name_their_topics_in_metadata_requests(
    topology_file: TopologyFile, settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    described: list[list[str]] = []
    describe_topics = AdminClient.describe_topics

    def whole_cluster(self: AdminClient, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a metadata request for the whole cluster")

    def recording(self: AdminClient, topics: TopicCollection, **kwargs: Any) -> Any:
        described.append(sorted(topics.topic_names))
        return describe_topics(self, topics, **kwargs)

    monkeypatch.setattr(AdminClient, "list_topics", whole_cluster)
    monkeypatch.setattr(AdminClient, "describe_topics", recording)
    topology = topology_file.write()

    apply(plan(topology, settings), settings)
    assert plan(topology, settings).is_empty

    assert described and all(set(names) <= set(topology_file.all_names()) for names in described)


def test_topic_created_between_plan_and_apply_is_tolerated(
    topology_file: TopologyFile, settings: KafkaSettings, kafka: str
) -> None:
    planned = plan(topology_file.write(), settings)
    create_topic(kafka, topology_file.payments, 2)

    result = apply(planned, settings)

    assert result.already_existed == (topology_file.payments,)
    assert topology_file.payments not in result.created
    assert len(result.created) == len(topology_file.all_names()) - 1


def test_unreachable_cluster_is_a_plan_error(topology_file: TopologyFile) -> None:
    address = f"127.0.0.1:{free_port()}"

    with pytest.raises(PlanError, match=f"cannot read topics from {address}: ") as info:
        plan(topology_file.write(), KafkaSettings(bootstrap_servers=address), timeout=1)

    assert info.value.code is not None and info.value.name


def test_failed_create_is_an_apply_error_naming_topic_and_kafka_error() -> None:
    address = f"127.0.0.1:{free_port()}"
    action = CreateTopic(TopicSpec(name="never-created", partitions=1))

    with pytest.raises(ApplyError, match="cannot create topic never-created: ") as info:
        apply(Plan(actions=(action,)), KafkaSettings(bootstrap_servers=address), timeout=1)

    assert info.value.topic == "never-created"
    assert info.value.name is not None and info.value.name in str(info.value)


def _exists(admin: AdminClient, topic: str) -> bool:
    return topic in admin.list_topics(timeout=10).topics


def test_a_growth_the_broker_refuses_leaves_the_whole_plan_unapplied(
    topology_file: TopologyFile, settings: KafkaSettings, admin: AdminClient, broker_is_tansu: bool
) -> None:
    apply(plan(topology_file.write(orders_partitions=2), settings), settings)
    dlq = f"{topology_file.orders}.billing.dlq"
    admin.delete_topics([dlq])[dlq].result(10)
    wait_until(lambda: not _exists(admin, dlq), timeout=10, message=f"{dlq} deleted")
    planned = plan(topology_file.write(orders_partitions=4, retention_ms=60_000), settings)
    assert CreateTopic in {type(a) for a in planned.actions} and AlterConfigs in {
        type(a) for a in planned.actions
    }
    # The embedded broker cannot grow partitions at all; Apache Kafka refuses a growth to the current count.
    refused = () if broker_is_tansu else (IncreasePartitions(topology_file.payments, 2, 2),)

    with pytest.raises(ApplyError, match="nothing was changed") as info:
        apply(Plan(actions=(*planned.actions, *refused)), settings)

    assert info.value.completed == ()
    assert not _exists(admin, dlq), "created although the plan was refused"
    assert configs(admin, topology_file.orders)["retention.ms"] == "3600000"
    assert partitions(admin, topology_file.orders) == 2
    assert partitions(admin, topology_file.payments) == 2


def test_a_replication_factor_above_the_brokers_creates_nothing(
    topology_file: TopologyFile, settings: KafkaSettings, admin: AdminClient
) -> None:
    brokers = len(admin.list_topics(timeout=10).brokers)
    planned = plan(topology_file.write(replication_factor=brokers + 1), settings)
    with pytest.raises(
        ApplyError,
        match=rf"replication factor {brokers + 1}\).*the cluster has {brokers} broker\(s\); nothing",
    ):
        apply(planned, settings)
    assert not [name for name in topology_file.all_names() if _exists(admin, name)]


class _RefusingAdmin:
    """An AdminClient whose incremental_alter_configs of one topic is refused, as a broker policy would."""

    def __init__(self, real: AdminClient, topic: str) -> None:
        self._real, self._topic = real, topic

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)

    def incremental_alter_configs(self, resources: list[ConfigResource], **kwargs: object) -> object:
        if any(r.name == self._topic for r in resources):
            refused: Future[None] = Future()
            refused.set_exception(
                KafkaException(KafkaError(KafkaError.POLICY_VIOLATION, "refused by the test"))
            )
            return {r: refused for r in resources}
        return self._real.incremental_alter_configs(resources, **kwargs)


def test_a_change_the_broker_refuses_midway_is_undone(
    topology_file: TopologyFile, settings: KafkaSettings, admin: AdminClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply(plan(topology_file.write(), settings), settings)
    new = f"{topology_file.orders}.extra"
    changes = (
        CreateTopic(TopicSpec(name=new, partitions=1)),
        AlterConfigs(topology_file.orders, (ConfigChange("retention.ms", "3600000", "60000"),)),
        AlterConfigs(topology_file.payments, (ConfigChange("retention.ms", None, "60000"),)),
    )
    real = _admin_of(settings)
    monkeypatch.setattr(
        "kep.topology.admin._admin", lambda _settings: _RefusingAdmin(real, topology_file.payments)
    )

    with pytest.raises(ApplyError) as info:
        apply(Plan(actions=changes), settings)

    message = str(info.value)
    assert message.startswith(
        f"cannot alter configs of {topology_file.payments}: POLICY_VIOLATION: refused by the test"
    )
    assert f"undone: configs of {topology_file.orders} put back, {new} deleted" in message
    assert info.value.completed == () and info.value.topic == topology_file.payments
    wait_until(lambda: not _exists(admin, new), timeout=10, message=f"{new} deleted")
    assert configs(admin, topology_file.orders)["retention.ms"] == "3600000"
