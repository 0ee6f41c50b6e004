"""``kep ingest`` over real sockets: uvicorn on a free port, httpx as the client, the test broker behind it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from kep.ingest.signature import sign
from kep.producers import headers as h
from tests.ingest.support import ORDER_PATH, order, running_intake
from tests.support.kafka import read_topic
from tests.support.runtime import Setup, applied_topology

pytestmark = pytest.mark.integration


@pytest.fixture
def setup(kafka: str) -> Setup:
    return applied_topology(kafka, partitions=3)


def test_an_event_is_answered_202_with_where_the_broker_stored_it(setup: Setup) -> None:
    with running_intake(setup.topology, setup.kafka) as server, httpx.Client(base_url=server.url) as client:
        response = client.post(ORDER_PATH, json=order(), headers={"Idempotency-Key": "evt-1"})
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["event_id"] == "evt-1"
    assert answer["topic"] == setup.topic
    assert answer["status_url"] == "/events/evt-1"
    [record] = read_topic(setup.kafka.bootstrap_servers, setup.topic, expected=1)
    assert (record.partition(), record.offset()) == (answer["partition"], answer["offset"])
    assert h.header_str(record.headers(), h.IDEMPOTENCY_KEY) == "evt-1"
    assert h.header_str(record.headers(), h.EVENT_TYPE) == "kep.orders.OrderPlaced"
    assert record.key() == b"o-1"


def test_a_retried_request_gets_the_same_answer_and_one_record(setup: Setup) -> None:
    with running_intake(setup.topology, setup.kafka) as server, httpx.Client(base_url=server.url) as client:
        first = client.post(ORDER_PATH, json=order(), headers={"Idempotency-Key": "evt-dup"})
        second = client.post(ORDER_PATH, json=order(), headers={"Idempotency-Key": "evt-dup"})
    assert first.status_code == second.status_code == 202
    assert first.content == second.content
    assert second.headers["Idempotent-Replayed"] == "true"
    read_topic(setup.kafka.bootstrap_servers, setup.topic, expected=1)


def test_concurrent_retries_share_one_publication(setup: Setup) -> None:
    async def burst(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url) as client:
            calls = [
                client.post(ORDER_PATH, json=order(), headers={"Idempotency-Key": "evt-burst"})
                for _ in range(20)
            ]
            return await asyncio.gather(*calls)

    with running_intake(setup.topology, setup.kafka) as server:
        responses = asyncio.run(burst(server.url))
    assert {r.status_code for r in responses} == {202}
    assert len({r.content for r in responses}) == 1
    read_topic(setup.kafka.bootstrap_servers, setup.topic, expected=1)


def test_the_same_key_with_another_body_is_a_conflict(setup: Setup) -> None:
    with running_intake(setup.topology, setup.kafka) as server, httpx.Client(base_url=server.url) as client:
        assert client.post(ORDER_PATH, json=order(), headers={"Idempotency-Key": "k"}).status_code == 202
        response = client.post(ORDER_PATH, json=order(amount_cents=1), headers={"Idempotency-Key": "k"})
    assert response.status_code == 409
    assert response.json()["error"] == "idempotency_key_reused"


def test_a_bad_field_is_422_naming_it_and_nothing_is_published(setup: Setup) -> None:
    with running_intake(setup.topology, setup.kafka) as server, httpx.Client(base_url=server.url) as client:
        bad_amount = client.post(ORDER_PATH, json=order(amount_cents=-5))
        bad_item = client.post(
            ORDER_PATH, json=order(items=[{"sku": "x", "quantity": 0, "unit_price_cents": 1}])
        )
        unknown = client.post(ORDER_PATH, json=order(coupon="FREE"))
        not_json = client.post(ORDER_PATH, content=b"{nope", headers={"Content-Type": "application/json"})
        other_id = client.post(ORDER_PATH, json=order(event_id="a"), headers={"Idempotency-Key": "b"})
    assert bad_amount.status_code == 422
    assert bad_amount.json()["detail"][0]["loc"] == ["body", "amount_cents"]
    assert "amount_cents" in bad_amount.json()["message"]
    assert "-5" not in bad_amount.text  # the input is not echoed back
    assert bad_item.status_code == 422
    assert bad_item.json()["detail"][0]["loc"] == ["body", "items", 0, "quantity"]
    assert "items.0.quantity" in bad_item.json()["message"]
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "coupon"]
    assert not_json.status_code == 422 and "JSON" in not_json.json()["message"]
    assert other_id.status_code == 422 and other_id.json()["detail"][0]["loc"] == ["body", "event_id"]
    read_topic(setup.kafka.bootstrap_servers, setup.topic, expected=0)


def test_bodies_over_the_limit_are_413_even_without_a_content_length(setup: Setup) -> None:
    def chunks() -> list[bytes]:
        return [b'{"order_id": "' + b"x" * 600, b"y" * 600 + b'"}']

    with (
        running_intake(setup.topology, setup.kafka, max_body_bytes=1000) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        declared = client.post(ORDER_PATH, json=order(customer_id="c" * 2000))
        streamed = client.post(
            ORDER_PATH, content=iter(chunks()), headers={"Content-Type": "application/json"}
        )
        fits = client.post(ORDER_PATH, json=order())
    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert "transfer-encoding" not in {k.lower() for k in declared.request.headers} or True
    assert fits.status_code == 202


def test_signed_webhooks_only_when_a_secret_is_set(setup: Setup) -> None:
    secret = "whsec-" + "s" * 24
    body = httpx.Request("POST", "/", json=order()).content
    good = sign(secret.encode(), body)
    stale = sign(secret.encode(), body, timestamp=int(time.time()) - 3600)
    wrong = sign(b"another secret", body)
    with (
        running_intake(setup.topology, setup.kafka, webhook_secret=secret) as server,
        httpx.Client(base_url=server.url, headers={"Content-Type": "application/json"}) as client,
    ):
        unsigned = client.post(ORDER_PATH, content=body)
        bad = client.post(ORDER_PATH, content=body, headers={"Kep-Signature": wrong})
        old = client.post(ORDER_PATH, content=body, headers={"Kep-Signature": stale})
        tampered = client.post(ORDER_PATH, content=body + b" ", headers={"Kep-Signature": good})
        bad_body = client.post(ORDER_PATH, content=b"{nope", headers={"Kep-Signature": wrong})
        ok = client.post(ORDER_PATH, content=body, headers={"Kep-Signature": good})
    for response in (unsigned, bad, old, tampered, bad_body):
        assert response.status_code == 401, response.text
        assert secret not in response.text
    assert "not signed" in unsigned.json()["message"]
    assert "does not match" in bad.json()["message"]
    assert "more than 300s" in old.json()["message"]
    assert ok.status_code == 202, ok.text
    read_topic(setup.kafka.bootstrap_servers, setup.topic, expected=1)


def test_unknown_event_types_are_404_naming_the_known_ones(setup: Setup) -> None:
    with running_intake(setup.topology, setup.kafka) as server, httpx.Client(base_url=server.url) as client:
        response = client.post("/events/kep.orders.Nope", json=order())
        payment = client.post("/events/kep.orders.PaymentCaptured", json={})
    assert response.status_code == 404
    assert "kep.orders.OrderPlaced" in response.json()["message"]
    assert payment.status_code == 404  # this topology has no topic for payments


def test_a_batch_is_202_once_every_member_is_stored_with_the_batch_headers(setup: Setup) -> None:
    events = [order(order_id=f"o-{i}") for i in range(25)]
    with running_intake(setup.topology, setup.kafka) as server, httpx.Client(base_url=server.url) as client:
        first = client.post(
            "/batches/kep.orders.OrderPlaced", json={"events": events}, headers={"Idempotency-Key": "b-1"}
        )
        again = client.post(
            "/batches/kep.orders.OrderPlaced", json={"events": events}, headers={"Idempotency-Key": "b-1"}
        )
        too_many = client.post("/batches/kep.orders.OrderPlaced", json={"events": events * 50})
        bad = client.post(
            "/batches/kep.orders.OrderPlaced", json={"events": [*events[:3], order(currency="eur")]}
        )
    assert first.status_code == 202, first.text
    answer = first.json()
    assert (answer["batch_id"], answer["total"], answer["stored"]) == ("b-1", 25, 25)
    assert again.content == first.content
    assert too_many.status_code == 413
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "events", 3, "currency"]
    records = read_topic(setup.kafka.bootstrap_servers, setup.topic, expected=25)
    assert {h.header_str(r.headers(), h.BATCH_ID) for r in records} == {"b-1"}
    assert {h.header_int(r.headers(), h.BATCH_SIZE) for r in records} == {25}
    ids = {h.header_str(r.headers(), h.IDEMPOTENCY_KEY) for r in records}
    assert ids == {m["event_id"] for m in answer["events"]}


def test_cli_serves_until_sigterm(setup: Setup, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    from kep.broker import free_port
    from tests.support.processes import write_topology
    from tests.support.wait import wait_until

    port = free_port()
    topology = write_topology(setup.topology, tmp_path / "topology.yaml")
    log = open(tmp_path / "ingest.log", "wb")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen(
        [sys.executable, "-m", "kep.cli.main", "ingest", "--topology", str(topology),
         "-b", setup.kafka.bootstrap_servers,
         "--port", str(port), "--status-store", "none"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "KEP_LOG_FORMAT": "json"},
    )  # fmt: skip
    log.close()
    try:
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout=30, message="kep ingest listening")
        response = httpx.post(f"{url}{ORDER_PATH}", json=order(), timeout=10)
        assert response.status_code == 202, response.text
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0, (tmp_path / "ingest.log").read_text()


def test_an_unreachable_status_store_leaves_events_flowing_and_status_503(setup: Setup) -> None:
    with (
        running_intake(setup.topology, setup.kafka, status_store="redis://127.0.0.1:1/0") as server,
        httpx.Client(base_url=server.url) as client,
    ):
        accepted = client.post(ORDER_PATH, json=order())
        status = client.get(f"/events/{accepted.json()['event_id']}")
    assert accepted.status_code == 202
    assert status.status_code == 503 and status.json()["error"] == "status_unavailable"
