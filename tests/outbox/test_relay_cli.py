"""``kep outbox relay`` as real processes: two relays on one outbox, one active; the standby takes over when the
active one is killed with SIGKILL, and every row is published exactly once; a store that is not SQL is refused."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kep.producers import headers as h
from kep.producers.outbox import Outbox
from shop.orders import OrderPlaced
from shop.samples import sample_events
from tests.apps.outbox import payment_for
from tests.outbox.support import Database, OutboxSetup, open_database, outbox_topology, read_topic
from tests.support.processes import ROOT
from tests.support.wait import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(params=["postgres", "sqlite"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    yield from open_database(request.param, tmp_path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> dict[str, float]:
    """``metric name -> value`` of the relay's samples, or {} while it does not answer."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
    except OSError:
        return {}
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"^(kep_outbox_[a-z_]+)\{[^}]*\} (\S+)$", text, re.MULTILINE)
    }


def start_relay(setup: OutboxSetup, db: Database, port: int, log: Path) -> subprocess.Popen[bytes]:
    args = ["outbox", "relay", "--idempotency-store", db.url, "-b", setup.kafka.bootstrap_servers]
    args += ["--table", db.table, "--metrics-port", str(port), "--metrics-host", "127.0.0.1"]
    env = {**os.environ, "KEP_OUTBOX_LOCK_RETRY_S": "0.5", "KEP_LOG_FORMAT": "json"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "kep.cli.main", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def write_payments(db: Database, setup: OutboxSetup, orders: list[OrderPlaced]) -> None:
    for order in orders:
        if db.kind == "sqlite":
            db.conn.execute("BEGIN IMMEDIATE")
            Outbox(db.conn, setup.topology, table=db.table).publish(payment_for(order))
            db.conn.execute("COMMIT")
        else:
            with db.conn.transaction():
                Outbox(db.conn, setup.topology, table=db.table).publish(payment_for(order))


def test_one_relay_is_active_and_the_standby_takes_over_after_kill9(
    kafka: str, tmp_path: Path, db: Database
) -> None:
    setup = outbox_topology(kafka)
    Outbox(db.conn, setup.topology, table=db.table).create_table()
    orders = [e for e in sample_events(100, seed=3, kind="orders") if isinstance(e, OrderPlaced)]
    write_payments(db, setup, orders[:50])
    ports = [free_port(), free_port()]
    relays = [start_relay(setup, db, port, tmp_path / f"relay-{i}.log") for i, port in enumerate(ports)]
    unsent = f"SELECT count(*) FROM {db.table} WHERE sent_at IS NULL"
    try:
        wait_until(lambda: db.count(unsent) == 0, timeout=60, message="the first 50 rows published")
        states = wait_until(
            lambda: (
                (s := [scrape(p) for p in ports]) and all("kep_outbox_relay_active" in x for x in s) and s
            ),
            timeout=30,
            message="both relays report",
        )
        assert sorted(s["kep_outbox_relay_active"] for s in states) == [0.0, 1.0], states
        active = 0 if states[0]["kep_outbox_relay_active"] == 1.0 else 1
        relays[active].send_signal(signal.SIGKILL)
        relays[active].wait(10)
        write_payments(db, setup, orders[50:])
        wait_until(lambda: db.count(unsent) == 0, timeout=60, message="the standby published the next 50")
        survivor = ports[1 - active]
        metrics = wait_until(
            lambda: (
                (s := scrape(survivor)).get("kep_outbox_relay_active") == 1.0
                and s.get("kep_outbox_unsent_rows") == 0  # refreshed about once a second
                and s
            ),
            timeout=30,
            message="the survivor active, reporting no backlog",
        )
        assert metrics["kep_outbox_published_total"] == 50
        assert metrics["kep_outbox_unsent_rows"] == 0
    finally:
        for relay in relays:
            if relay.poll() is None:
                relay.terminate()
                assert relay.wait(30) == 0, (tmp_path / "relay-0.log").read_text()[-2000:]
    records = read_topic(kafka, setup.follow, 100)
    published = sorted(h.header_str(r.headers(), h.IDEMPOTENCY_KEY) or "" for r in records)
    assert published == sorted(payment_for(o).event_id for o in orders)  # each once, across the takeover


def test_a_store_that_is_not_sql_is_refused_with_its_name(kafka: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kep.cli.main",
            "outbox",
            "relay",
            "--idempotency-store",
            "redis://u:secret@h:6379/0",
        ],
        cwd=ROOT,
        env={**os.environ, "KEP_KAFKA_BOOTSTRAP_SERVERS": kafka},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "needs an SQL database" in result.stderr and "h:6379/0" in result.stderr
    assert "secret" not in result.stderr + result.stdout
