"""The OpenAPI document describes every accepted event type's body, and no request generated from it (valid or
not) gets a 5xx: schemathesis against the running intake over a real socket."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from kep.ingest.server import BackgroundServer
from kep.topology import admin
from kep.topology.model import TopicSpec, Topology
from kep.topology.settings import KafkaSettings
from tests.ingest.support import running_intake
from tests.support.kafka import unique

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def intake(kafka: str) -> Iterator[BackgroundServer]:
    topology = Topology(
        topics=(
            TopicSpec(
                name=unique("orders"),
                partitions=2,
                value_schema="kep.orders.OrderPlaced",
                key_field="order_id",
            ),
            TopicSpec(name=unique("payments"), partitions=2, value_schema="kep.orders.PaymentCaptured"),
        )
    )
    settings_ = KafkaSettings(bootstrap_servers=kafka)
    admin.apply(admin.plan(topology, settings_), settings_)
    with running_intake(topology, settings_, ack_timeout_s=10.0) as server:
        yield server


def test_the_document_describes_each_event_types_body(intake: BackgroundServer) -> None:
    document = httpx.get(f"{intake.url}/openapi.json").json()
    paths = document["paths"]
    for name, model in (
        ("kep.orders.OrderPlaced", "OrderPlaced"),
        ("kep.orders.PaymentCaptured", "PaymentCaptured"),
    ):
        body = paths[f"/events/{name}"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{model}"}
        assert f"/batches/{name}" in paths
    schemas = document["components"]["schemas"]
    assert set(schemas["OrderPlaced"]["required"]) == {
        "order_id",
        "customer_id",
        "items",
        "amount_cents",
        "currency",
    }
    assert schemas["OrderPlaced"]["properties"]["currency"]["pattern"] == "^[A-Z]{3}$"
    assert "LineItem" in schemas and "PaymentMethod" in schemas


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda m: m.value)
def test_no_generated_request_gets_a_server_error(
    intake: BackgroundServer, mode: schemathesis.GenerationMode
) -> None:
    """Every operation, with bodies, headers and paths generated from the document: valid ones (positive) and
    ones that break it (negative). Driven with hypothesis directly: schemathesis's pytest plugin does not
    support this pytest."""
    api = schemathesis.openapi.from_url(f"{intake.url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 6
    tested = 0
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=[schemathesis.checks.not_a_server_error], timeout=30)

        try:
            call()
        except Unsatisfiable:  # nothing to break: a GET whose only input is a free-form path string
            assert mode is schemathesis.GenerationMode.NEGATIVE and operation.method.upper() == "GET"
            continue
        tested += 1
    assert tested >= 4
