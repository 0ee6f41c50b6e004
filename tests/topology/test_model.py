from typing import Any

import pytest
from pydantic import ValidationError

from kep.topology import ConsumerGroupSpec, RetrySpec, TopicSpec, Topology, TopologyError
from kep.topology.model import DEFAULT_DEAD_LETTER_TOPIC_CONFIGS, DEFAULT_RETRY_TOPIC_CONFIGS

pytestmark = pytest.mark.unit


def topology(**overrides: Any) -> Topology:
    data: dict[str, Any] = {
        "topics": [
            {
                "name": "orders",
                "partitions": 6,
                "value_schema": "kep.orders.OrderPlaced",
                "key_field": "order_id",
                "configs": {"max.message.bytes": 2_000_000, "retention.ms": "3600000"},
            },
            {
                "name": "payments",
                "partitions": 3,
                "replication_factor": 2,
                "value_schema": ["kep.orders.PaymentCaptured", "kep.orders.OrderPlaced"],
            },
        ],
        "groups": [
            {"name": "billing", "topics": ["orders"], "retry": {"delays": ["1s", "10s", "1m"]}},
            {
                "name": "shipping",
                "topics": ["orders", "payments"],
                "retry": {"delays": ["5s"]},
                "topic_retry": {"payments": {"delays": ["30s"], "dead_letter": False}},
            },
        ],
    }
    data.update(overrides)
    return Topology.model_validate(data)


# --- topics -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["orders", "a.b_c-D9", "x" * 249])
def test_legal_topic_names_are_accepted(name: str) -> None:
    assert TopicSpec(name=name, partitions=1).name == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "must not be empty"),
        ("orders!", "contains '!'"),
        ("a b", "contains ' '"),
        ("x" * 250, "Kafka allows 249"),
        ("..", "reserved"),
    ],
)
def test_illegal_topic_names_say_why(name: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        TopicSpec(name=name, partitions=1)


def test_topic_spec_is_frozen_and_refuses_unknown_keys() -> None:
    spec = TopicSpec(name="t", partitions=1)
    with pytest.raises(ValidationError):
        spec.partitions = 2  # type: ignore[misc]
    with pytest.raises(ValidationError, match="partitons"):
        TopicSpec.model_validate({"name": "t", "partitions": 1, "partitons": 2})


def test_partitions_and_replication_factor_must_be_positive() -> None:
    with pytest.raises(ValidationError, match="partitions"):
        TopicSpec(name="t", partitions=0)
    with pytest.raises(ValidationError, match="replication_factor"):
        TopicSpec(name="t", partitions=1, replication_factor=0)


def test_config_values_become_kafka_strings() -> None:
    spec = TopicSpec.model_validate(
        {
            "name": "t",
            "partitions": 1,
            "configs": {"retention.ms": 1000, "cleanup.policy": ["compact", "delete"], "preallocate": True},
        }
    )
    assert spec.configs == {"retention.ms": "1000", "cleanup.policy": "compact,delete", "preallocate": "true"}


def test_numeric_configs_must_be_whole_numbers() -> None:
    with pytest.raises(ValidationError, match="retention.ms must be a whole number, got '7d'"):
        TopicSpec.model_validate({"name": "t", "partitions": 1, "configs": {"retention.ms": "7d"}})


def test_value_schema_takes_one_name_or_a_list() -> None:
    t = topology()
    assert t.topic("orders").value_schema == ("kep.orders.OrderPlaced",)
    assert t.topic("payments").value_schema == ("kep.orders.PaymentCaptured", "kep.orders.OrderPlaced")
    with pytest.raises(ValidationError, match="not an Avro full name"):
        TopicSpec(name="t", partitions=1, value_schema="kep.orders.Order-Placed")


def test_topics_for_event_lists_every_topic_carrying_it() -> None:
    t = topology()
    assert [s.name for s in t.topics_for_event("kep.orders.OrderPlaced")] == ["orders", "payments"]
    assert [s.name for s in t.topics_for_event("kep.orders.PaymentCaptured")] == ["payments"]
    assert t.topics_for_event("kep.orders.Unknown") == []


def test_lookups_name_what_is_missing() -> None:
    t = topology()
    assert t.group("billing").name == "billing"
    with pytest.raises(TopologyError, match="unknown topic 'refunds' .*orders, payments"):
        t.topic("refunds")
    with pytest.raises(TopologyError, match="unknown group 'audit' .*billing, shipping"):
        t.group("audit")


# --- retry policy -----------------------------------------------------------------------------------------


def test_retry_defaults() -> None:
    spec = RetrySpec()
    assert (spec.delays, spec.jitter, spec.max_attempts, spec.deadline) == ((), 0.0, None, None)
    assert (spec.dead_letter, spec.mode, spec.fatal_exceptions, spec.attempts) == (True, "topics", (), 1)


def test_attempts_default_to_first_try_plus_one_per_delay() -> None:
    spec = RetrySpec.model_validate({"delays": ["1s", "10s", "1m"]})
    assert spec.attempts == 4 and spec.retries == 3
    assert [spec.delay_for(n) for n in (1, 2, 3, 4)] == [1.0, 10.0, 60.0, None]


def test_more_attempts_than_delays_reuse_the_last_delay() -> None:
    spec = RetrySpec.model_validate({"delays": ["1s", "10s"], "max_attempts": 5})
    assert [spec.tier_index(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 2, None]
    group = ConsumerGroupSpec(name="g", topics=("orders",), retry=spec)
    assert [t.topic if t else None for t in (group.retry_tier_for("orders", n) for n in (1, 3, 4, 5))] == [
        "orders.g.retry.1s",
        "orders.g.retry.10s",
        "orders.g.retry.10s",
        None,
    ]


def test_fewer_attempts_than_delays_is_refused() -> None:
    with pytest.raises(ValidationError, match="never use the delays 10s, 1m"):
        RetrySpec.model_validate({"delays": ["1s", "10s", "1m"], "max_attempts": 2})


def test_attempts_without_delays_are_refused() -> None:
    with pytest.raises(ValidationError, match="need at least one delay"):
        RetrySpec.model_validate({"max_attempts": 3})


@pytest.mark.parametrize(
    ("retry", "message"),
    [
        ({"delays": ["0s"]}, "must be greater than 0"),
        ({"delays": [10]}, "add a unit"),
        ({"delays": ["10"]}, "not a number with a unit"),
        ({"jitter": 1.5}, "less than or equal to 1"),
        ({"jitter": -0.1}, "greater than or equal to 0"),
        ({"mode": "eventually"}, "'topics' or 'blocking'"),
        ({"fatal_exceptions": ["not a class"]}, "not a dotted class name"),
        ({"delays": ["10s"], "deadline": "5s"}, "shorter than the first delay"),
        ({"max_attempts": 0}, "greater than or equal to 1"),
    ],
)
def test_retry_validation(retry: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RetrySpec.model_validate(retry)


def test_delays_with_the_same_suffix_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"delays\[0\] and delays\[2\] are both 1m"):
        RetrySpec.model_validate({"delays": ["60s", "10m", "1m"]})


def test_delays_need_not_increase() -> None:
    assert RetrySpec.model_validate({"delays": ["1m", "1s"]}).delays == (60.0, 1.0)


def test_retry_spec_dumps_durations_in_canonical_form() -> None:
    spec = RetrySpec.model_validate({"delays": ["60s", "500ms"], "deadline": "3600s"})
    assert spec.model_dump()["delays"] == ("1m", "500ms")
    assert spec.model_dump()["deadline"] == "1h"
    assert RetrySpec.model_validate(spec.model_dump()) == spec


# --- derived names ----------------------------------------------------------------------------------------


def test_retry_tiers_are_named_per_topic_group_and_delay() -> None:
    tiers = topology().group("billing").retry_tiers("orders")
    assert [(t.topic, t.index, t.delay_seconds, t.suffix) for t in tiers] == [
        ("orders.billing.retry.1s", 1, 1.0, "1s"),
        ("orders.billing.retry.10s", 2, 10.0, "10s"),
        ("orders.billing.retry.1m", 3, 60.0, "1m"),
    ]
    assert all(t.source == "orders" and t.group == "billing" for t in tiers)


def test_two_groups_on_one_topic_never_share_retry_or_dead_letter_topics() -> None:
    t = topology()
    billing, shipping = t.group("billing"), t.group("shipping")
    assert {x.topic for x in billing.retry_tiers("orders")}.isdisjoint(
        x.topic for x in shipping.retry_tiers("orders")
    )
    assert billing.dlq_topic("orders") == "orders.billing.dlq"
    assert shipping.dlq_topic("orders") == "orders.shipping.dlq"


def test_per_topic_retry_overrides_the_group_policy() -> None:
    shipping = topology().group("shipping")
    assert shipping.retry_for("payments").delays == (30.0,)
    assert [x.topic for x in shipping.retry_tiers("payments")] == ["payments.shipping.retry.30s"]
    assert shipping.dlq_topic("payments") is None
    assert shipping.retry_for("orders").delays == (5.0,)


def test_blocking_mode_has_no_retry_topics_but_keeps_dead_letters() -> None:
    group = ConsumerGroupSpec.model_validate(
        {"name": "ledger", "topics": ["orders"], "retry": {"delays": ["1s"], "mode": "blocking"}}
    )
    assert group.retry_tiers("orders") == []
    assert group.retry_tier_for("orders", 1) is None
    assert group.retry_for("orders").delay_for(1) == 1.0
    assert group.dlq_topic("orders") == "orders.ledger.dlq"


def test_group_methods_refuse_topics_the_group_does_not_read() -> None:
    with pytest.raises(TopologyError, match="group 'billing' does not read topic 'payments'"):
        topology().group("billing").retry_tiers("payments")


def test_all_topic_specs_adds_derived_topics_like_their_source() -> None:
    specs = {s.name: s for s in topology().all_topic_specs()}
    assert list(specs) == [
        "orders",
        "payments",
        "orders.billing.retry.1s",
        "orders.billing.retry.10s",
        "orders.billing.retry.1m",
        "orders.billing.dlq",
        "orders.shipping.retry.5s",
        "orders.shipping.dlq",
        "payments.shipping.retry.30s",
    ]
    retry, dlq = specs["orders.billing.retry.10s"], specs["orders.billing.dlq"]
    assert (retry.partitions, retry.replication_factor, dlq.partitions) == (
        6,
        None,
        6,
    )  # the broker's default
    assert specs["payments.shipping.retry.30s"].replication_factor == 2
    assert retry.configs == {"max.message.bytes": "2000000", **DEFAULT_RETRY_TOPIC_CONFIGS}
    assert dlq.configs == {"max.message.bytes": "2000000", **DEFAULT_DEAD_LETTER_TOPIC_CONFIGS}
    assert retry.value_schema == ("kep.orders.OrderPlaced",) and retry.key_field == "order_id"


def test_derived_topic_configs_can_be_overridden() -> None:
    t = topology(
        retry_topic_configs={"retention.ms": "86400000"}, dead_letter_topic_configs={"retention.ms": -1}
    )
    specs = {s.name: s for s in t.all_topic_specs()}
    assert specs["orders.billing.retry.1s"].configs["retention.ms"] == "86400000"
    assert specs["orders.billing.retry.1s"].configs["cleanup.policy"] == "delete"
    assert specs["orders.billing.dlq"].configs["retention.ms"] == "-1"


def test_retry_retention_shorter_than_a_delay_is_refused() -> None:
    with pytest.raises(
        ValidationError, match="retry_topic_configs.retention.ms: 30000 ms .* longest retry delay 1m"
    ):
        topology(retry_topic_configs={"retention.ms": "30000"})


# --- topology-wide validation -----------------------------------------------------------------------------


def test_duplicate_topic_and_group_names_are_refused() -> None:
    with pytest.raises(
        ValidationError, match=r"topics\[1\].name: duplicate topic 'orders' \(also topics\[0\]\)"
    ):
        Topology.model_validate(
            {"topics": [{"name": "orders", "partitions": 1}, {"name": "orders", "partitions": 2}]}
        )
    group = {"name": "g", "topics": ["orders"]}
    with pytest.raises(ValidationError, match=r"groups\[1\].name: duplicate group 'g'"):
        Topology.model_validate({"topics": [{"name": "orders", "partitions": 1}], "groups": [group, group]})


def test_groups_must_reference_declared_topics() -> None:
    with pytest.raises(ValidationError, match=r"groups\[0\].topics\[1\]: unknown topic 'refunds'"):
        topology(groups=[{"name": "g", "topics": ["orders", "refunds"]}])


def test_topic_retry_must_name_a_topic_of_the_group() -> None:
    with pytest.raises(
        ValidationError, match="topic_retry.payments: group 'g' does not read topic 'payments'"
    ):
        ConsumerGroupSpec.model_validate({"name": "g", "topics": ["orders"], "topic_retry": {"payments": {}}})


def test_derived_names_must_not_collide_with_declared_topics() -> None:
    topics = [{"name": "orders", "partitions": 1}, {"name": "orders.g.dlq", "partitions": 1}]
    with pytest.raises(ValidationError, match=r"groups\[0\]: topic 'orders.g.dlq' is also topics\[1\]"):
        Topology.model_validate({"topics": topics, "groups": [{"name": "g", "topics": ["orders"]}]})


def test_names_equal_up_to_dot_and_underscore_collide() -> None:
    topics = [{"name": "a.b", "partitions": 1}, {"name": "a_b", "partitions": 1}]
    with pytest.raises(ValidationError, match="'a_b' collides with 'a.b'"):
        Topology.model_validate({"topics": topics})


def test_derived_names_must_fit_kafka_limits() -> None:
    long_name = "o" * 240
    with pytest.raises(ValidationError, match="derived topic name .* Kafka allows 249"):
        Topology.model_validate(
            {
                "topics": [{"name": long_name, "partitions": 1}],
                "groups": [{"name": "billing", "topics": [long_name]}],
            }
        )


def test_group_needs_topics() -> None:
    with pytest.raises(ValidationError, match="at least 1 item"):
        ConsumerGroupSpec.model_validate({"name": "g", "topics": []})
