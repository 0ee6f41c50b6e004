"""The outbox's pure parts and its table on SQLite, without a broker."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kep.producers import headers as h
from kep.producers.errors import OutboxError
from kep.producers.outbox import Outbox, OutboxSettings, OutboxTable
from kep.producers.outbox.outbox import _DEFAULT
from kep.producers.outbox.publisher import marker_ranges, marker_value
from kep.producers.outbox.record import OutboxRecord, headers_from_json
from kep.producers.outbox.relay import CrashHook
from kep.producers.outbox.table import id_ranges
from kep.topology.errors import TopologyError
from shop.orders import OrderPlaced
from shop.samples import sample_events
from tests.apps.outbox import payment_for
from tests.support.shop import SHOP_TOPOLOGY

pytestmark = pytest.mark.unit


def test_id_ranges_split_at_every_missing_id() -> None:
    assert id_ranges([]) == []
    assert id_ranges([7, 1, 2, 3]) == [(1, 3), (7, 7)]
    assert id_ranges([4, 6, 8]) == [(4, 4), (6, 6), (8, 8)]


def test_a_marker_round_trips_and_anything_else_reads_as_none() -> None:
    assert marker_ranges(marker_value([(1, 3), (7, 7)])) == [(1, 3), (7, 7)]
    for junk in (None, b"", b"{", b'{"ranges": "x"}', b"[1]", b'{"ranges": [[1]]}'):
        assert marker_ranges(junk) is None, junk


def test_headers_round_trip_any_bytes_and_null_values() -> None:
    record = OutboxRecord("t", b"k", b"v", (("a", b"\x00\xff"), ("b", None), ("c", b"")), "id")
    assert headers_from_json(record.headers_json()) == [("a", b"\x00\xff"), ("b", None), ("c", b"")]


@pytest.mark.parametrize("name", ["Outbox", "x; DROP TABLE y", "1abc", "", "a" * 49, "outbox-1"])
def test_a_table_name_that_is_not_a_plain_identifier_is_refused(name: str) -> None:
    with pytest.raises(OutboxError, match="outbox table name"):
        OutboxTable("sqlite", name)
    with pytest.raises(ValueError, match="table"):
        OutboxSettings(table=name)


def test_the_crash_hook_reads_its_points() -> None:
    hook = CrashHook("after-publish:0.5, in-transaction")
    assert hook.points == {"after-publish": 0.5, "in-transaction": 1.0}
    assert CrashHook(None).points == {}
    CrashHook("after-publish:0")("after-publish")  # probability 0: still alive


def test_outbox_without_a_topology_reads_kep_topology_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    order = next(e for e in sample_events(1, kind="orders") if isinstance(e, OrderPlaced))
    monkeypatch.delenv("KEP_TOPOLOGY", raising=False)
    _DEFAULT.clear()
    with pytest.raises(TopologyError, match="KEP_TOPOLOGY"):
        Outbox(conn)
    monkeypatch.setenv("KEP_TOPOLOGY", str(SHOP_TOPOLOGY))
    outbox = Outbox(conn)
    outbox.create_table()
    conn.execute("BEGIN")
    first = outbox.publish(payment_for(order), causation_id=order.event_id)
    conn.execute("COMMIT")
    (row,) = conn.execute("SELECT id, topic, key, event_id, headers FROM kep_outbox").fetchall()
    assert row[:4] == (first, "payments", order.order_id.encode(), payment_for(order).event_id)
    assert h.header_str(headers_from_json(row[4]), h.CAUSATION_ID) == order.event_id


def test_outbox_refuses_a_connection_it_does_not_know() -> None:
    with pytest.raises(OutboxError, match="sqlite3 or psycopg connection"):
        Outbox(object(), None)
