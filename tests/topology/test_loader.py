import textwrap
from pathlib import Path

import pytest

from kep.schemas.errors import KepError
from kep.topology import (
    TopologyError,
    check_schema_names,
    default_topology_path,
    load_topology,
    parse_topology,
    schema_registry,
)
from tests.support.hostile import yaml_alias_bomb
from tests.support.shop import SHOP_SCHEMAS, SHOP_TOPOLOGY

pytestmark = pytest.mark.unit

GOOD = """\
topics:
  - name: orders
    partitions: 3
    value_schema: kep.orders.OrderPlaced
  - name: payments
    partitions: 3
groups:
  - name: billing
    topics: [orders]
  - name: shipping
    topics: [orders, payments]
    retry:
      delays: [1s, 10s, 1m]
"""


def write(tmp_path: Path, text: str, name: str = "topology.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load_error(tmp_path: Path, text: str) -> TopologyError:
    path = write(tmp_path, text)
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    assert str(path) in str(info.value), "the error names the file"
    assert info.value.source == str(path)
    return info.value


def test_a_good_file_loads(tmp_path: Path) -> None:
    topology = load_topology(write(tmp_path, GOOD))
    assert [t.name for t in topology.topics] == ["orders", "payments"]
    assert topology.group("shipping").retry.delays == (1.0, 10.0, 60.0)


def test_bad_duration_names_the_path_and_line(tmp_path: Path) -> None:
    error = load_error(tmp_path, GOOD.replace("[1s, 10s, 1m]", "[1s, 10s, 1 minute]"))
    assert str(error).endswith(
        ":13: groups[1].retry.delays[2]: duration '1 minute' is not a number with a unit (ms, s, m, h, d), "
        "e.g. '500ms', '10s'"
    )
    assert [(p.path, p.line) for p in error.problems] == [("groups[1].retry.delays[2]", 13)]


def test_wrong_type_names_the_path_and_value(tmp_path: Path) -> None:
    error = load_error(
        tmp_path, GOOD.replace("partitions: 3\n    value_schema", "partitions: six\n    value_schema")
    )
    assert ":3: topics[0].partitions: Input should be a valid integer" in str(error)
    assert "(got 'six')" in str(error)


def test_unknown_key_suggests_the_known_one(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        GOOD.replace("  - name: payments\n    partitions: 3", "  - name: payments\n    partitons: 3"),
    )
    assert str(error).splitlines()[1:] == [
        "  line 5: topics[1].partitions: missing required key 'partitions'",
        "  line 6: topics[1].partitons: unknown key 'partitons'; did you mean 'partitions'?",
    ]


def test_unknown_topic_in_a_group(tmp_path: Path) -> None:
    error = load_error(tmp_path, GOOD.replace("topics: [orders, payments]", "topics: [orders, refunds]"))
    assert str(error).endswith(
        ":11: groups[1].topics[1]: unknown topic 'refunds' (declared topics: orders, payments)"
    )


def test_invalid_yaml_gives_the_line(tmp_path: Path) -> None:
    error = load_error(tmp_path, GOOD.replace("topics: [orders]", "topics: [orders"))
    assert ":10: invalid YAML: while parsing a flow sequence (from line 9), expected ',' or ']'" in str(error)
    assert error.problems[0].line == 10


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        GOOD.replace(
            "    partitions: 3\n    value_schema", "    partitions: 3\n    partitions: 4\n    value_schema"
        ),
    )
    assert ":4: topics[0]: duplicate key 'partitions' (first on line 3)" in str(error)


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    text = GOOD.replace("partitions: 3\n    value_schema", "partitions: 0\n    value_schema").replace(
        "10s", "-10s"
    )
    error = load_error(tmp_path, text)
    assert str(error).splitlines()[0].endswith(": 2 problems:")
    assert {p.path for p in error.problems} == {"topics[0].partitions", "groups[1].retry.delays[1]"}


def test_problems_found_by_model_rules_keep_their_path(tmp_path: Path) -> None:
    text = GOOD + "      max_attempts: 2\n"
    error = load_error(tmp_path, text)
    assert (
        ":14: groups[1].retry.max_attempts: 2 attempts (first try + 1 retries) never use the delays 10s, 1m"
        in str(error)
    )


def test_config_keys_with_dots_are_located(tmp_path: Path) -> None:
    text = GOOD + "retry_topic_configs:\n  retention.ms: 1000\n"
    error = load_error(tmp_path, text)
    assert (
        ":15: retry_topic_configs.retention.ms: 1000 ms is not longer than the longest retry delay 1m"
        in str(error)
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "the file is empty"),
        ("- a\n- b\n", "expected a mapping with 'topics' and 'groups', got list"),
        ("topics: 3\n", "topics: Input should be a list (got 3)"),
    ],
)
def test_wrong_shapes(tmp_path: Path, text: str, reason: str) -> None:
    assert reason in str(load_error(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="nope.yaml: no such topology file"):
        load_topology(tmp_path / "nope.yaml")


def test_topology_error_is_a_kep_error() -> None:
    assert issubclass(TopologyError, KepError)


def test_the_default_is_the_environment_variable_and_there_is_no_shipped_topology(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEP_TOPOLOGY", raising=False)
    assert default_topology_path() is None
    with pytest.raises(
        TopologyError, match=r"^no topology: pass --topology FILE or set KEP_TOPOLOGY \(kep ships none"
    ):
        load_topology()
    custom = write(tmp_path, GOOD.replace("name: orders", "name: custom").replace("[orders", "[custom"))
    monkeypatch.setenv("KEP_TOPOLOGY", str(custom))
    assert default_topology_path() == custom
    assert load_topology().topics[0].name == "custom"


def test_the_shop_topology_is_the_orders_example(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEP_SCHEMAS")  # its own schemas: are enough
    topology = load_topology(SHOP_TOPOLOGY, check_schemas=True)
    assert topology.schemas == (str(SHOP_SCHEMAS),)
    orders, payments = topology.topic("orders"), topology.topic("payments")
    assert (orders.partitions, orders.value_schema, orders.key_field) == (
        6,
        ("kep.orders.OrderPlaced",),
        "order_id",
    )
    assert (payments.partitions, payments.value_schema) == (6, ("kep.orders.PaymentCaptured",))
    assert [t.topic for t in topology.group("billing").retry_tiers("orders")] == [
        "orders.billing.retry.1s",
        "orders.billing.retry.10s",
        "orders.billing.retry.1m",
    ]
    assert topology.group("billing").dlq_topic("orders") == "orders.billing.dlq"
    assert [t.topic for t in topology.group("shipping").retry_tiers("payments")] == [
        "payments.shipping.retry.5s",
        "payments.shipping.retry.1m",
    ]


def test_schema_paths_are_relative_to_the_topology_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEP_SCHEMAS")
    service = tmp_path / "service"
    (service / "events").mkdir(parents=True)
    (service / "more").mkdir()
    for path in SHOP_SCHEMAS.glob("kep.orders.OrderPlaced.*"):
        (service / "events" / path.name).write_text(path.read_text())
    payment = SHOP_SCHEMAS / "kep.orders.PaymentCaptured.v1.avsc"
    (service / "more" / payment.name).write_text(payment.read_text())
    text = GOOD.replace(
        "partitions: 3\ngroups", "partitions: 3\n    value_schema: kep.orders.PaymentCaptured\ngroups"
    )
    single = write(service, "schemas: events\n" + text, "one.yaml")
    with pytest.raises(
        TopologyError,
        match=r"unknown schema 'kep\.orders\.PaymentCaptured' \(known: kep\.orders\.OrderPlaced\)",
    ):
        load_topology(single, check_schemas=True)
    write(service, f"schemas: [events, more/{payment.name}]\n" + text, "two.yaml")
    monkeypatch.chdir(tmp_path)  # resolved against the file, not the working directory
    topology = load_topology(Path("service/two.yaml"), check_schemas=True)
    assert topology.schemas == ("service/events", f"service/more/{payment.name}")
    assert schema_registry(topology).names() == [
        "kep.batches.BatchCompleted",  # kep's own, always there
        "kep.orders.OrderPlaced",
        "kep.orders.PaymentCaptured",
    ]


def test_kep_schemas_adds_to_the_topology_schemas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, GOOD)  # no schemas: of its own
    monkeypatch.delenv("KEP_SCHEMAS")
    with pytest.raises(
        TopologyError,
        match=r"unknown schema 'kep\.orders\.OrderPlaced' \(known: none: list schema paths under 'schemas:' "
        r"or in KEP_SCHEMAS\)",
    ):
        load_topology(path, check_schemas=True)
    monkeypatch.setenv("KEP_SCHEMAS", str(SHOP_SCHEMAS))
    assert load_topology(path, check_schemas=True).schemas == ()


def test_a_missing_schema_path_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "schemas: [events, nowhere]\n" + GOOD)
    (tmp_path / "events").mkdir()
    with pytest.raises(
        TopologyError, match=rf"{path}:1: schemas\[1\]: {tmp_path / 'nowhere'} does not exist"
    ):
        load_topology(path)
    with pytest.raises(TopologyError, match=r"<string>:1: schemas: a schema path must not be empty"):
        parse_topology('schemas: [""]\n' + GOOD)


def test_an_invalid_schema_file_is_a_topology_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "a.b.C.v1.avsc").write_text("{")
    path = write(tmp_path, "schemas: events\n" + GOOD)
    with pytest.raises(TopologyError, match=r"schemas: .*a\.b\.C\.v1\.avsc: not valid JSON"):
        load_topology(path, check_schemas=True)


def test_unknown_schema_names_are_reported_with_their_path(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("kep.orders.OrderPlaced", "kep.orders.OrderShipped"))
    with pytest.raises(
        TopologyError, match=r"topics\[0\].value_schema\[0\]: unknown schema 'kep.orders.OrderShipped'"
    ):
        load_topology(path, check_schemas=True)
    check_schema_names(load_topology(path), ["kep.orders.OrderShipped"])  # known names pass


def test_parse_topology_names_its_source() -> None:
    with pytest.raises(TopologyError, match=r"^inline:1: topics\[0\].name: missing required key 'name'"):
        parse_topology("topics: [{partitions: 1}]", source="inline")


def test_yaml_aliases_are_refused_before_anything_is_expanded(tmp_path: Path) -> None:
    """A billion-laughs file hung ``kep topology validate``; an alias is refused with its line, at once."""
    error = load_error(tmp_path, yaml_alias_bomb(first_line="topics: []") + "\ngroups: []")
    assert "YAML aliases (*a) are not allowed" in str(error)
    assert error.problems[0].line == 3


def test_deep_nesting_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    error = load_error(tmp_path, "topics: " + "[" * 5000 + "]" * 5000 + "\ngroups: []\n")
    assert "nested more than 32 levels deep" in str(error)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("    topics: [orders]\n", '    topics: [orders]\n    retry: {delays: ["10s\\n"]}\n'),
        ("delays: [1s, 10s, 1m]", "delays: [1s, \u0661\u0660s]"),  # Arabic-Indic digits
        (
            "    partitions: 3\n    value_schema",
            '    partitions: 3\n    configs: {retention.ms: "\u0663"}\n    value_schema',
        ),
    ],
)
def test_names_durations_and_integers_are_whole_ascii_strings(old: str, new: str) -> None:
    assert old in GOOD
    with pytest.raises(TopologyError):
        parse_topology(GOOD.replace(old, new, 1))


def test_a_kafka_name_with_a_final_newline_is_refused() -> None:
    from kep.topology._types import kafka_name_problem

    assert (
        kafka_name_problem("orders\n")
        == "'orders\\n' contains '\\n'; Kafka allows only letters, digits, '.', '_' and '-'"
    )
    assert kafka_name_problem("orders") is None
