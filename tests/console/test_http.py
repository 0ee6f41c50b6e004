"""The console over HTTP (no browser): pages, search, escaping, roles, CSRF, replay through the dlq path."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from kep.console.app import create_app
from kep.console.server import BackgroundServer, uvicorn_config
from kep.console.settings import ConsoleSettings
from kep.consumers.dlq import replay_group
from kep.producers import headers as h
from kep.schemas.codec import codec_for
from kep.topology.settings import KafkaSettings
from shop.orders import OrderPlaced
from tests.console.conftest import TOKEN, Cluster, Served, csrf
from tests.dlq.conftest import T0, committed
from tests.support.kafka import read_topic
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

HOSTILE = "<script>alert(1)</script>"


@contextlib.contextmanager
def _operator(served: Served) -> Iterator[httpx.Client]:
    """A client logged in as operator ``alice`` through the login form."""
    with served.client() as client:
        token = csrf(client, "/login")
        answer = client.post("/login", data={"name": "alice", "token": TOKEN, "csrf_token": token})
        assert answer.status_code == 303, answer.text
        yield client


def test_search_escapes_hostile_keys_and_headers(served: Served) -> None:
    letters = served.cluster.dead_letters
    letters.add(partition=0, exc=TimeoutError(HOSTILE), failed_at_ms=T0, key=HOSTILE.encode())
    letters.add(partition=1, exc=KeyError("sku"), failed_at_ms=T0 + 1, key=b"k-[/]")
    with served.client() as client:
        search = f"/dead-letters/{letters.dlq}"
        wait_until(lambda: 'id="total">2<' in client.get(search).text, message="both dead letters indexed")
        page = client.get(search)
        assert HOSTILE not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert "k-[/]" in page.text
        found = client.get(f"/dead-letters/{letters.dlq}", params={"key": "k-[/]"})
        assert 'id="total">1<' in found.text and "KeyError" in found.text
        detail = client.get(f"/dead-letters/{letters.dlq}/0/0")
        assert detail.status_code == 200
        assert HOSTILE not in detail.text and "&lt;script&gt;" in detail.text
        assert "kep-exception-traceback" in detail.text and "x-tenant" in detail.text


def test_viewer_sees_no_replay_control_and_a_forged_post_gets_403(served: Served) -> None:
    letters = served.cluster.dead_letters
    letters.add(partition=0, exc=TimeoutError("t"), failed_at_ms=T0)
    with served.client() as client:
        wait_until(lambda: 'id="total">1<' in client.get(f"/dead-letters/{letters.dlq}").text)
        page = client.get(f"/dead-letters/{letters.dlq}/0/0")
        assert "replay-one" not in page.text and 'name="ref"' not in page.text
        token = csrf(client, "/login")  # a valid CSRF token: the role alone refuses
        forged = client.post(f"/dead-letters/{letters.dlq}/replay", data={"ref": "0:0", "csrf_token": token})
        assert forged.status_code == 403
    with _operator(served) as operator:
        no_token = operator.post(f"/dead-letters/{letters.dlq}/replay", data={"ref": "0:0"})
        assert no_token.status_code == 403 and "CSRF" in no_token.text
    assert read_topic(served.cluster.kafka, served.cluster.tier) == []


def test_operator_dry_runs_then_replays_one_and_the_action_is_recorded(served: Served) -> None:
    letters = served.cluster.dead_letters
    letters.add(partition=0, exc=TimeoutError("t0"), failed_at_ms=T0)
    letters.add(partition=1, exc=TimeoutError("t1"), failed_at_ms=T0 + 1)
    with _operator(served) as client:
        wait_until(lambda: 'id="total">2<' in client.get(f"/dead-letters/{letters.dlq}").text)
        token = csrf(client, f"/dead-letters/{letters.dlq}")
        planned = client.post(f"/dead-letters/{letters.dlq}/replay", data={"ref": "1:0", "csrf_token": token})
        assert planned.status_code == 303, planned.text
        action_url = planned.headers["location"]
        preview = client.get(action_url)
        assert re.search(r'id="would-replay">1<', preview.text), preview.text
        assert served.cluster.source in preview.text
        assert read_topic(served.cluster.kafka, served.cluster.tier) == []  # a dry run sends nothing
        ran = client.post(f"{action_url}/run", data={"csrf_token": token})
        assert ran.status_code == 303
        done = client.get(action_url)
        assert 'id="replayed-count">1<' in done.text
        again = client.post(f"{action_url}/run", data={"csrf_token": token})
        assert again.status_code == 409
        audit = client.get("/audit")
        assert "alice (token login)" in audit.text and "1 replayed" in audit.text
    republished = read_topic(served.cluster.kafka, served.cluster.tier, expected=1)
    assert republished[0].value() == letters.sent[1]["value"]
    # the other dead letter was not selected: it stays pending, holding partition 0's replay progress back
    assert 0 not in committed(served.cluster.kafka, replay_group(letters.dlq), letters.dlq, 2)


def test_search_filters_and_paging(served: Served) -> None:
    letters = served.cluster.dead_letters
    sent = [
        letters.add(partition=i % 2, exc=TimeoutError(f"t{i}"), failed_at_ms=T0 + i * 60_000)
        for i in range(7)
    ]
    letters.add(partition=0, exc=KeyError("sku"), failed_at_ms=T0 + 3_600_000)
    search = f"/dead-letters/{letters.dlq}"
    with served.client() as client:
        wait_until(lambda: 'id="total">8<' in client.get(search).text, message="all eight indexed")

        def total(**params: str) -> int:
            page = client.get(search, params=params)
            found = re.search(r'id="total">(\d+)<', page.text)
            assert found is not None, page.text
            return int(found.group(1))

        assert total(exception="TimeoutError") == 7
        assert total(exception="builtins.KeyError") == 1
        assert total(since="2026-01-01T00:02", until="2026-01-01T00:05") == 3
        assert total(event_id=str(sent[3]["event_id"])) == 1
        assert total(field="amount_cents", value="900") == 8
        assert total(field="items[0].sku", value="sku-1") == 8
        assert total(field="customer_id", value="nobody") == 0
        assert total(text='"currency":"EUR"') == 8
        assert total(state="replayed") == 0
        bad = client.get(search, params={"since": "yesterday"})
        assert bad.status_code == 400 and "since &#39;yesterday&#39;" in bad.text
        bad = client.get(search, params={"field": "a;drop table", "value": "x"})
        assert bad.status_code == 400 and "expected a payload field" in bad.text

    settings = served.settings.model_copy(update={"page_size": 3})
    from kep.console.index import DeadLetterIndex, Query

    index = DeadLetterIndex(settings.database, KafkaSettings(bootstrap_servers=letters.kafka), None)
    try:
        seen: list[str] = []
        cursor = None
        while True:
            page = index.search(letters.dlq, Query(), page_size=3, before=cursor)
            seen += [r.ref for r in page.rows]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert len(seen) == 8 and len(set(seen)) == 8  # keyset paging: every one once, newest first
        assert seen[0] == "0:4"  # the KeyError, an hour later than the rest
    finally:
        index.close()


def test_edited_payload_is_validated_before_anything_is_sent_then_replayed(served: Served) -> None:
    letters = served.cluster.dead_letters
    letters.add(partition=0, exc=ValueError("bad currency"), failed_at_ms=T0)
    with _operator(served) as client:
        wait_until(lambda: 'id="total">1<' in client.get(f"/dead-letters/{letters.dlq}").text)
        edit = f"/dead-letters/{letters.dlq}/0/0/edit"
        token = csrf(client, edit)
        form = client.get(edit).text
        assert "payload-editor" in form and "&#34;currency&#34;: &#34;EUR&#34;" in form
        event = client.get(f"/dead-letters/{letters.dlq}/0/0")
        assert event.status_code == 200
        payload = {
            "event_id": str(letters.sent[0]["event_id"]),
            "occurred_at": "2026-01-01T00:00:00Z",
            "order_id": "o-edited",
            "customer_id": "c-1",
            "items": [{"sku": "sku-1", "quantity": 2, "unit_price_cents": 450}],
            "amount_cents": 900,
            "currency": "euro",
        }
        refused = client.post(edit, data={"payload": json.dumps(payload), "csrf_token": token})
        assert refused.status_code == 422
        assert "currency" in refused.text and "payload does not match kep.orders.OrderPlaced" in refused.text
        refused = client.post(edit, data={"payload": "{not json", "csrf_token": token})
        assert refused.status_code == 422 and "not valid JSON" in refused.text
        assert read_topic(served.cluster.kafka, served.cluster.tier) == []

        payload["currency"] = "EUR"
        planned = client.post(edit, data={"payload": json.dumps(payload), "csrf_token": token})
        assert planned.status_code == 303, planned.text
        action_url = planned.headers["location"]
        assert 'id="would-replay">1<' in client.get(action_url).text
        assert client.post(f"{action_url}/run", data={"csrf_token": token}).status_code == 303
        assert 'id="replayed-count">1<' in client.get(action_url).text
    [record] = read_topic(served.cluster.kafka, served.cluster.tier, expected=1)
    replayed = codec_for().decode(record.value() or b"")
    assert isinstance(replayed, OrderPlaced) and replayed.order_id == "o-edited"
    assert record.key() == letters.sent[0]["key"]  # same key, same headers: only the payload changed
    assert dict(record.headers() or [])[h.IDEMPOTENCY_KEY] == str(letters.sent[0]["event_id"]).encode()


def test_replay_by_filter_takes_every_pending_match_only(served: Served) -> None:
    letters = served.cluster.dead_letters
    timeouts = [letters.add(partition=i % 2, exc=TimeoutError("t"), failed_at_ms=T0 + i) for i in range(4)]
    letters.add(partition=0, exc=KeyError("sku"), failed_at_ms=T0 + 10)
    with _operator(served) as client:
        wait_until(lambda: 'id="total">5<' in client.get(f"/dead-letters/{letters.dlq}").text)
        token = csrf(client, f"/dead-letters/{letters.dlq}")
        planned = client.post(
            f"/dead-letters/{letters.dlq}/replay",
            data={"scope": "filter", "exception": "TimeoutError", "csrf_token": token},
        )
        assert planned.status_code == 303, planned.text
        action_url = planned.headers["location"]
        assert 'id="would-replay">4<' in client.get(action_url).text
        client.post(f"{action_url}/run", data={"csrf_token": token})
        assert 'id="replayed-count">4<' in client.get(action_url).text
        pending = client.get(f"/dead-letters/{letters.dlq}", params={"state": "pending"}).text
        assert 'id="total">1<' in pending and "KeyError" in pending
    values = sorted(
        m.value() or b"" for m in read_topic(served.cluster.kafka, served.cluster.tier, expected=4)
    )
    assert values == sorted(bytes(t["value"]) for t in timeouts)  # type: ignore[call-overload]


def test_bearer_and_basic_auth_and_wrong_credentials(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    with served.client() as client:
        assert client.get("/groups", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert (
            'data-role="operator"' in client.get("/groups", headers={"Authorization": f"Bearer {TOKEN}"}).text
        )
        wrong = client.get("/groups", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "nope" not in wrong.text
        basic = client.get("/groups", auth=("operator", "whatever-password"))
        assert basic.status_code == 401 and "basic auth is not configured" in basic.text
        token = csrf(client, "/login")
        refused = client.post("/login", data={"name": "mallory", "token": "guess", "csrf_token": token})
        assert refused.status_code == 401 and 'data-role="viewer"' in refused.text
    assert TOKEN not in repr(served.settings) and TOKEN not in caplog.text


def test_basic_auth_operator(cluster: Cluster, tmp_path: Path) -> None:
    settings = ConsoleSettings(
        port=0,
        operator_password=SecretStr("s3cret-basic-pw"),
        database=tmp_path / "c.db",
        group_filter="none",
    )
    app = create_app(settings, cluster.topology, kafka=KafkaSettings(bootstrap_servers=cluster.kafka))
    server = BackgroundServer(uvicorn_config(app, settings)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            ok = client.get("/groups", auth=("operator", "s3cret-basic-pw"))
            assert ok.status_code == 200 and "operator: operator" in ok.text
            assert client.get("/groups", auth=("operator", "wrong")).status_code == 401
            assert client.get("/groups", auth=("root", "s3cret-basic-pw")).status_code == 401
            assert 'data-role="viewer"' in client.get("/groups").text
    finally:
        server.stop()


def test_settings_refuse_weak_secrets_and_bad_patterns() -> None:
    with pytest.raises(ValueError, match="operator_token must be at least 12 characters"):
        ConsoleSettings(operator_token=SecretStr("short"))
    with pytest.raises(ValueError, match="group_filter"):
        ConsoleSettings(group_filter="(")
