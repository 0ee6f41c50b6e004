"""``kep outbox ls``: what waits in the outbox, on SQLite and PostgreSQL, with untrusted keys shown escaped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kep.cli.main import app as cli
from kep.producers.outbox import Outbox
from kep.producers.outbox.table import OutboxTable
from kep.topology.model import TopicSpec, Topology
from shop.samples import sample_events
from tests.apps.outbox import payment_for
from tests.outbox.support import Database, open_database

pytestmark = pytest.mark.integration

runner = CliRunner()
TOPOLOGY = Topology(
    topics=(
        TopicSpec(
            name="payments", partitions=1, value_schema="kep.orders.PaymentCaptured", key_field="order_id"
        ),
    )
)
HOSTILE = "k-[/]\x1b[2J\u202e"


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    yield from open_database(request.param, tmp_path)


def write(db: Database, order_ids: list[str]) -> None:
    orders = [e for e in sample_events(len(order_ids) * 4, seed=5, kind="orders") if hasattr(e, "items")]
    for order, order_id in zip(orders, order_ids, strict=False):
        payment = payment_for(order.model_copy(update={"order_id": order_id}))
        if db.kind == "sqlite":
            db.conn.execute("BEGIN IMMEDIATE")
            Outbox(db.conn, TOPOLOGY, table=db.table).publish(payment)
            db.conn.execute("COMMIT")
        else:
            with db.conn.transaction():
                Outbox(db.conn, TOPOLOGY, table=db.table).publish(payment)


def ls(db: Database, *args: str) -> tuple[int, str]:
    result = runner.invoke(cli, ["outbox", "ls", "--idempotency-store", db.url, "--table", db.table, *args])
    return result.exit_code, result.output


def test_ls_counts_unsent_rows_per_topic_and_lists_the_oldest_with_keys_escaped(db: Database) -> None:
    Outbox(db.conn, TOPOLOGY, table=db.table).create_table()
    write(db, ["o-1", HOSTILE, "o-3"])
    table = OutboxTable.for_connection(db.conn, db.table)
    first = db.rows(f"SELECT min(id) FROM {db.table}")[0][0]
    if db.kind == "sqlite":
        table.mark_sent(db.conn, [(first, first)])
    else:
        with db.conn.transaction():
            table.mark_sent(db.conn, [(first, first)])

    code, out = ls(db, "--json")
    assert code == 0, out
    data = json.loads(out)
    assert (data["unsent"], data["sent_kept"]) == (2, 1)
    assert [(t["topic"], t["unsent"]) for t in data["topics"]] == [("payments", 2)]
    assert [r["key"] for r in data["oldest_unsent"]] == [HOSTILE, "o-3"]
    assert all(r["age_s"] >= 0 for r in data["oldest_unsent"])

    code, out = ls(db)
    assert code == 0, out
    assert "2 unsent, 1 sent and kept as history" in out
    assert "k-[/]\\x1b[2J\\u202e" in out  # shown, never acted on by the terminal nor read as markup
    assert "\x1b" not in out


def test_ls_names_a_missing_table_and_a_store_that_is_not_sql(db: Database) -> None:
    code, out = ls(db)
    assert code != 0 and "not found" in out and db.table in out
    result = runner.invoke(
        cli, ["outbox", "ls", "--idempotency-store", "redis://:pw-secret@127.0.0.1:6379/0"]
    )
    assert result.exit_code != 0 and "needs an SQL database" in result.output
    assert "pw-secret" not in result.output
