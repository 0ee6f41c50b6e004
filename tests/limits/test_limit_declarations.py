"""Limits are declared in the topology (under a group) or on a handler; bad declarations are named clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kep.cli.main import app as cli
from kep.consumers.app import App
from kep.consumers.errors import AppError
from kep.consumers.limits import worker_limits
from kep.consumers.limits.memory import MemoryLimitStore
from kep.topology import Rate, parse_rate
from kep.topology.errors import TopologyError
from kep.topology.loader import parse_topology
from shop.orders import OrderPlaced

pytestmark = pytest.mark.unit

TOPOLOGY = """
topics:
  - name: orders
    partitions: 1
    value_schema: kep.orders.OrderPlaced
  - name: payments
    partitions: 1
    value_schema: kep.orders.PaymentCaptured
groups:
  - name: billing
    topics: [orders, payments]
    limits:
{limits}
"""


def topology(limits: str) -> str:
    return TOPOLOGY.format(limits="\n".join("      " + line for line in limits.strip().splitlines()))


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("50/s", Rate(50, 1.0)),
        ("100/1m", Rate(100, 60.0)),
        ("5/500ms", Rate(5, 0.5)),
        (" 3 / 2h ", Rate(3, 7200.0)),
    ],
)
def test_rates_are_a_count_per_duration(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["50", "50/", "/s", "0/s", "-1/s", "50/0s", "50/sec", "1.5/s", "50/s/s", ""])
def test_bad_rates_are_refused_naming_the_value(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


def test_a_topology_declares_limits_by_topic_and_event_type() -> None:
    spec = parse_topology(
        topology(
            """
orders: {rate: 100/1m, burst: 10, per: field:customer_id}
kep.orders.PaymentCaptured: {concurrency: 5}
"""
        )
    ).group("billing")
    orders = spec.limits["orders"]
    assert (orders.parsed_rate, orders.burst, orders.per_field) == (Rate(100, 60.0), 10, "customer_id")
    assert spec.limits["kep.orders.PaymentCaptured"].concurrency == 5


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ("orders: {rate: fast}", "rate 'fast' is not <count>/<duration>"),
        ("orders: {burst: 5}", "burst needs a rate"),
        ("orders: {}", "a limit needs a rate"),
        ("orders: {concurrency: 0}", "greater than or equal to 1"),
        ("orders: {rate: 5/s, per: 'customer id'}", "use 'field:<name>'"),
        ("orders: {rate: 5/s, every: 1s}", "every"),
        ("refunds: {rate: 5/s}", "group 'billing' has no topic or event type 'refunds'"),
        ("kep.orders.Refund: {rate: 5/s}", "no topic or event type 'kep.orders.Refund'"),
    ],
)
def test_bad_limits_are_named_with_their_place(limits: str, message: str) -> None:
    with pytest.raises(TopologyError, match="limits") as raised:
        parse_topology(topology(limits))
    assert message in str(raised.value)


def test_a_handler_declares_its_own_limit() -> None:
    app = App("billing", topics=["orders"])

    @app.handler("orders", rate="50/s", concurrency=5, per="customer_id")
    def bill(event: OrderPlaced, ctx: object) -> None: ...

    [handler] = app.handlers()
    assert handler.limit is not None
    assert (handler.limit.rate, handler.limit.concurrency, handler.limit.per) == (
        "50/s",
        5,
        "field:customer_id",
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": "50 per second"}, "handler for topic 'orders': invalid limit: rate: rate '50 per second'"),
        ({"burst": 3}, "burst needs a rate"),
        ({"concurrency": -1}, "concurrency: Input should be greater than or equal to 1"),
        ({"rate": "5/s", "per": "a.b"}, "per: per 'a.b'"),
    ],
)
def test_a_bad_handler_limit_names_the_handler(kwargs: dict[str, object], message: str) -> None:
    app = App("billing", topics=["orders"])
    with pytest.raises(AppError) as raised:
        app.handler("orders", **kwargs)  # type: ignore[arg-type]
    assert message in str(raised.value)


def test_unlimited_handlers_open_no_store_and_find_no_limit() -> None:
    app = App("billing", topics=["orders", "payments"])

    @app.handler("orders")
    def bill(event: OrderPlaced, ctx: object) -> None: ...

    assert (
        worker_limits(app, "billing", None, store_url="redis://nowhere:1/0", lease_s=60, registry=None)
        is None
    )


def test_the_topology_overrides_the_handler_and_an_event_type_wins_over_its_topic() -> None:
    app = App("billing", topics=["orders", "payments"])

    @app.handler("orders", rate="1/s")
    def bill(event: OrderPlaced, ctx: object) -> None: ...

    @app.handler("payments", concurrency=2)
    def pay(event: object, ctx: object) -> None: ...

    spec = parse_topology(
        topology("orders: {rate: 9/s}\nkep.orders.PaymentCaptured: {concurrency: 3}")
    ).group("billing")
    limits = worker_limits(
        app,
        "billing",
        spec,
        store_url="memory://",
        lease_s=60,
        registry=None,
        store=MemoryLimitStore("billing"),
    )
    assert limits is not None
    by_topic, by_event = app.handlers()
    orders = limits.find("orders", "kep.orders.OrderPlaced", by_topic)
    payments = limits.find("payments", "kep.orders.PaymentCaptured", by_event)
    assert orders is not None and orders.limit.rate == Rate(9, 1.0)
    assert payments is not None and payments.limit.concurrency == 3
    assert limits.find("payments", "kep.orders.Other", by_event) is not None  # the handler's own: 2
    assert limits.find("payments", "kep.orders.Other", by_event).limit.concurrency == 2  # type: ignore[union-attr]


def test_kep_topology_show_lists_the_limits(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(
        topology(
            "orders: {rate: 100/1m, burst: 10, per: field:customer_id}\nkep.orders.PaymentCaptured: {concurrency: 5}"
        )
    )
    runner = CliRunner(env={"COLUMNS": "200"})
    result = runner.invoke(cli, ["topology", "show", "--topology", str(path)])
    assert result.exit_code == 0, result.output
    assert "group billing limits orders: rate 100/1m, burst 10, per field:customer_id" in result.output
    assert "group billing limits kep.orders.PaymentCaptured: concurrency 5" in result.output
    result = runner.invoke(cli, ["topology", "show", "--topology", str(path), "--json"])
    assert json.loads(result.output)["limits"] == [
        {"group": "billing", "for": "orders", "rate": "100/1m", "burst": 10, "per": "field:customer_id"},
        {"group": "billing", "for": "kep.orders.PaymentCaptured", "concurrency": 5},
    ]
