"""``schedules:`` in a topology file: every mistake is named with the schedule, the field and the line, and the
event's fields are checked against the service's own schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from kep.topology import TopologyError, load_topology
from tests.support.shop import SHOP_SCHEMAS

pytestmark = pytest.mark.unit

HEAD = f"""\
schemas: {SHOP_SCHEMAS}
topics:
  - name: orders
    partitions: 3
    value_schema: kep.orders.OrderPlaced
    key_field: order_id
  - name: payments
    partitions: 3
    value_schema: kep.orders.PaymentCaptured
schedules:
"""
GOOD = """\
  - name: nightly-sync
    cron: "30 2 * * *"
    timezone: Europe/Paris
    event: kep.orders.OrderPlaced
    topic: orders
    fields:
      order_id: sync
      customer_id: crm
      items: [{sku: SKU-1, quantity: 1, unit_price_cents: 100}]
      amount_cents: 100
      currency: EUR
"""


def load(tmp_path: Path, schedules: str, *, check_schemas: bool = True) -> object:
    path = tmp_path / "topology.yaml"
    path.write_text(HEAD + schedules)
    return load_topology(path, check_schemas=check_schemas)


def problem(tmp_path: Path, schedules: str) -> str:
    with pytest.raises(TopologyError) as caught:
        load(tmp_path, schedules)
    return str(caught.value)


def test_a_valid_schedule_loads_with_its_defaults_and_declares_the_state_topic(tmp_path: Path) -> None:
    topology = load(tmp_path, GOOD)
    (spec,) = topology.schedules  # type: ignore[attr-defined]
    assert (spec.missed, spec.catch_up_limit, spec.grace, spec.key) == ("skip", 100, 60.0, None)
    state = topology.all_topic_specs()[-1]  # type: ignore[attr-defined]
    assert (state.name, state.partitions, state.configs["cleanup.policy"]) == ("kep.schedules", 1, "compact")


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (
            ("currency: EUR", "currency: [EUR]"),
            "topology.yaml:21: schedules[0].fields.currency: schedule 'nightly-sync': "
            "Input should be a valid string for kep.orders.OrderPlaced (got ['EUR'])",
        ),
        (
            ("      amount_cents: 100\n", ""),
            "schedules[0].fields.amount_cents: schedule 'nightly-sync': Field required for kep.orders.OrderPlaced",
        ),
        (
            ("quantity: 1", "quantity: many"),
            "topology.yaml:19: schedules[0].fields.items[0].quantity: schedule 'nightly-sync': "
            "Input should be a valid integer",
        ),
        (
            ("      currency: EUR\n", "      currency: EUR\n      colour: red\n"),
            "schedules[0].fields.colour: schedule 'nightly-sync': Extra inputs are not permitted",
        ),
        (("      order_id: sync\n", ""), "schedules[0].fields.order_id"),
    ],
    ids=["type-str", "missing", "type", "unknown-field", "no-key"],
)
def test_fields_that_do_not_make_a_valid_event_are_named(
    tmp_path: Path, change: tuple[str, str], says: str
) -> None:
    assert says in problem(tmp_path, GOOD.replace(*change))


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (
            ("30 2 * * *", "61 2 * * *"),
            "schedules[0].cron: cron expression '61 2 * * *' is not valid: Bad minute",
        ),
        (("30 2 * * *", "every day"), "schedules[0].cron: cron expression 'every day' is not valid"),
        (("Europe/Paris", "Europe/Pariss"), "schedules[0].timezone: unknown time zone 'Europe/Pariss'"),
        (
            ("topic: orders", "topic: refunds"),
            "schedules[0].topic: schedule 'nightly-sync': unknown topic 'refunds'",
        ),
        (
            ("topic: orders", "topic: payments"),
            "schedules[0].event: schedule 'nightly-sync': topic 'payments' does not carry kep.orders.OrderPlaced",
        ),
        (
            ("      order_id: sync\n", "      event_id: x\n      order_id: sync\n"),
            "schedules[0].fields: 'event_id' is set by each firing",
        ),
        (
            ("    fields:\n", "    missed: later\n    fields:\n"),
            "schedules[0].missed: Input should be 'skip' or 'catch_up'",
        ),
        (("    fields:\n", "    catch_up_limit: 0\n    fields:\n"), "schedules[0].catch_up_limit"),
        (
            ("    fields:\n", "    crn: x\n    fields:\n"),
            "schedules[0].crn: unknown key 'crn'; did you mean 'cron'?",
        ),
    ],
    ids=[
        "cron-range",
        "cron-words",
        "zone",
        "topic",
        "event-topic",
        "firing-field",
        "missed",
        "limit",
        "typo",
    ],
)
def test_schedule_mistakes_name_the_schedule_and_field(
    tmp_path: Path, change: tuple[str, str], says: str
) -> None:
    assert says in problem(tmp_path, GOOD.replace(*change))


def test_an_unknown_event_is_named(tmp_path: Path) -> None:
    text = HEAD.replace(
        "value_schema: kep.orders.OrderPlaced", "value_schema: [kep.orders.OrderPlaced, kep.orders.Nope]"
    )
    path = tmp_path / "topology.yaml"
    path.write_text(text + GOOD.replace("event: kep.orders.OrderPlaced", "event: kep.orders.Nope"))
    with pytest.raises(TopologyError, match="unknown schema 'kep.orders.Nope'"):
        load_topology(path, check_schemas=True)


def test_two_schedules_with_one_name_are_refused(tmp_path: Path) -> None:
    assert "schedules[1].name: duplicate schedule 'nightly-sync' (also schedules[0])" in problem(
        tmp_path, GOOD + GOOD
    )


def test_an_explicit_key_is_kept(tmp_path: Path) -> None:
    topology = load(tmp_path, GOOD.replace("    fields:\n", "    key: crm\n    fields:\n"))
    assert topology.schedules[0].key == "crm"  # type: ignore[attr-defined]


def test_topology_show_lists_the_state_topic(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from kep.cli.main import app

    load(tmp_path, GOOD)  # written and valid
    result = CliRunner().invoke(
        app, ["topology", "show", "--topology", str(tmp_path / "topology.yaml"), "--json"]
    )
    assert result.exit_code == 0, result.output
    kinds = {t["name"]: t["kind"] for t in json.loads(result.stdout)["topics"]}
    assert kinds["kep.schedules"] == "schedule-state"
