"""A broker that stops answering (SIGSTOP): every request is answered 503 within the bound, never 202, and a
retry with the same Idempotency-Key succeeds once the broker is back."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from kep.broker import EmbeddedBroker
from tests.ingest.support import ORDER_PATH, order, running_intake
from tests.support.runtime import applied_topology
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ACK_TIMEOUT_S = 1.0


async def _burst(url: str, keys: list[str]) -> list[tuple[httpx.Response, float]]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def one(key: str) -> tuple[httpx.Response, float]:
            started = time.monotonic()
            response = await client.post(
                ORDER_PATH, json=order(order_id=key), headers={"Idempotency-Key": key}
            )
            return response, time.monotonic() - started

        return await asyncio.gather(*(one(k) for k in keys))


def test_sigstopped_broker_gives_503_never_202() -> None:
    with EmbeddedBroker() as broker:  # a private broker: the session's must keep answering
        setup = applied_topology(broker.bootstrap_servers, partitions=2)
        with running_intake(setup.topology, setup.kafka, ack_timeout_s=ACK_TIMEOUT_S) as server:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                assert (
                    client.post(ORDER_PATH, json=order(), headers={"Idempotency-Key": "warm"}).status_code
                    == 202
                )
            keys = [f"stopped-{i}" for i in range(10)]
            broker.pause()
            try:
                answers = asyncio.run(_burst(server.url, keys))
                ready = httpx.get(f"{server.url}/readyz", timeout=5)
            finally:
                broker.resume()
            statuses = [response.status_code for response, _ in answers]
            assert statuses == [503] * len(keys), [r.text for r, _ in answers]
            assert max(took for _, took in answers) < ACK_TIMEOUT_S + 2.0
            body = answers[0][0].json()
            assert body["error"] == "broker_unavailable"
            assert "stopped-" in body["message"] and "Idempotency-Key" in body["message"]
            assert answers[0][0].headers["Retry-After"] == "1"
            assert ready.status_code == 503

            def retried() -> bool:
                with httpx.Client(base_url=server.url, timeout=30) as client:
                    response = client.post(
                        ORDER_PATH, json=order(order_id=keys[0]), headers={"Idempotency-Key": keys[0]}
                    )
                assert response.status_code in (202, 503), response.text
                return response.status_code == 202

            wait_until(retried, timeout=60, interval=0.5, message="a retry is stored once the broker is back")
