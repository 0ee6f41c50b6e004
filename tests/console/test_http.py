"""The console over HTTP (no browser): pages, search, escaping, roles, CSRF, replay through the dlq path."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import httpx
import pytest

from kep.consumers.dlq import replay_group
from tests.console.conftest import TOKEN, Served, csrf
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
        page = wait_until(
            lambda: (
                (r := client.get(f"/dead-letters/{letters.dlq}")).status_code == 200
                and 'id="total">2<' in r.text
                and r
            ),
            message="both dead letters indexed",
        )
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
    assert read_topic(served.cluster.kafka, served.cluster.source) == []


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
        assert read_topic(served.cluster.kafka, served.cluster.source) == []  # a dry run sends nothing
        ran = client.post(f"{action_url}/run", data={"csrf_token": token})
        assert ran.status_code == 303
        done = client.get(action_url)
        assert 'id="replayed-count">1<' in done.text
        again = client.post(f"{action_url}/run", data={"csrf_token": token})
        assert again.status_code == 409
        audit = client.get("/audit")
        assert "alice (token login)" in audit.text and "1 replayed" in audit.text
    republished = read_topic(served.cluster.kafka, served.cluster.source, expected=1)
    assert republished[0].value() == letters.sent[1]["value"]
    # the other dead letter was not selected: it stays pending, holding partition 0's replay progress back
    assert 0 not in committed(served.cluster.kafka, replay_group(letters.dlq), letters.dlq, 2)
