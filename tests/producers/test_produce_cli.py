"""``kep produce``: generated events, JSON-lines files with bad lines, pacing."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kep.cli.main import app
from kep.cli.produce import _Pacer
from kep.producers import headers as h
from shop.samples import sample_events
from tests.support.kafka import read_topic

runner = CliRunner()


def _topology_file(tmp_path: Path, topic: str, partitions: int, schemas: str) -> Path:
    path = tmp_path / "topology.yaml"
    path.write_text(
        f"topics:\n  - name: {topic}\n    partitions: {partitions}\n    value_schema: {schemas}\n"
        "    key_field: order_id\n"
    )
    return path


def _jsonl(events: list[object]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


@pytest.mark.integration
def test_produce_count_sends_generated_events_and_summarises_per_partition(
    kafka: str, topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = topic_factory(partitions=3, prefix="orders")
    topology = _topology_file(tmp_path, topic, 3, "kep.orders.OrderPlaced")
    result = runner.invoke(app, ["produce", topic, "--count", "25", "-b", kafka, "--topology", str(topology)])
    assert result.exit_code == 0, result.output
    assert "acknowledged" in result.stdout and "partition 0" in result.stdout and "events/s" in result.stdout
    records = read_topic(kafka, topic, expected=25)
    assert {h.header_str(r.headers(), h.EVENT_TYPE) for r in records} == {"kep.orders.OrderPlaced"}


@pytest.mark.integration
def test_produce_file_sends_good_lines_and_names_each_bad_line(
    kafka: str, topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = topic_factory(partitions=1, prefix="orders")
    topology = _topology_file(tmp_path, topic, 1, "kep.orders.OrderPlaced")
    good = [e.model_dump(mode="json") for e in sample_events(3, kind="orders")]
    bad_item = json.loads(json.dumps(good[0]))
    bad_item["items"][0]["quantity"] = "many"
    events = tmp_path / "events.jsonl"
    events.write_text(_jsonl([good[0], bad_item, good[1]]) + "{not json\n\n" + _jsonl([good[2]]))
    result = runner.invoke(
        app, ["produce", topic, "--file", str(events), "-b", kafka, "--topology", str(topology)]
    )
    assert result.exit_code == 1
    assert f"{events}:2: field items[0].quantity" in result.stderr
    assert f"{events}:4:" in result.stderr and "not JSON" in result.stderr
    assert "2 bad line(s)" in result.stderr
    sent = read_topic(kafka, topic, expected=3)
    assert [h.header_str(r.headers(), h.IDEMPOTENCY_KEY) for r in sent] == [g["event_id"] for g in good]


@pytest.mark.integration
def test_produce_file_strict_sends_nothing_when_a_line_is_bad(
    kafka: str, topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = topic_factory(partitions=1, prefix="orders")
    topology = _topology_file(tmp_path, topic, 1, "kep.orders.OrderPlaced")
    good = [e.model_dump(mode="json") for e in sample_events(2, kind="orders")]
    events = tmp_path / "events.jsonl"
    events.write_text(_jsonl([good[0], {"order_id": "o-1"}, good[1]]))
    args = ["produce", topic, "--file", str(events), "--strict", "-b", kafka, "--topology", str(topology)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert f"{events}:2: field" in result.stderr and "nothing sent (--strict)" in result.stderr
    read_topic(kafka, topic, expected=0)


@pytest.mark.integration
def test_produce_to_a_topic_outside_the_topology_is_an_error(kafka: str, tmp_path: Path) -> None:
    topology = _topology_file(tmp_path, "orders-x", 1, "kep.orders.OrderPlaced")
    result = runner.invoke(app, ["produce", "nowhere", "-b", kafka, "--topology", str(topology)])
    assert result.exit_code == 2
    assert "nowhere" in result.stderr


@pytest.mark.unit
def test_pacer_waits_until_each_event_is_due() -> None:
    now = [100.0]
    polled: list[float] = []

    def poll(timeout: float) -> None:
        polled.append(timeout)
        now[0] += timeout

    pacer = _Pacer(50, poll, clock=lambda: now[0])  # 50 events/s: one every 20 ms
    stop = threading.Event()
    pacer.wait_turn(0, stop)
    assert polled == []
    pacer.wait_turn(10, stop)
    assert now[0] == pytest.approx(100.2)
    unlimited = _Pacer(0, poll, clock=lambda: now[0])
    unlimited.wait_turn(10**6, stop)
    assert now[0] == pytest.approx(100.2)


SHIPMENT = {
    "type": "record",
    "name": "ParcelShipped",
    "namespace": "acme.logistics",
    "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "occurred_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "parcel_id", "type": "string"},
        {"name": "weight_grams", "type": "int"},
        {"name": "carrier", "type": {"type": "enum", "name": "Carrier", "symbols": ["POST", "COURIER"]}},
        {"name": "stops", "type": {"type": "array", "items": "string"}},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}


def _service(tmp_path: Path, topic: str) -> Path:
    """A service's own schema (no hand-written model anywhere) and a topology pointing at it."""
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "acme.logistics.ParcelShipped.v1.avsc").write_text(json.dumps(SHIPMENT))
    path = tmp_path / "topology.yaml"
    path.write_text(
        f"schemas: schemas\ntopics:\n  - name: {topic}\n    partitions: 2\n"
        "    value_schema: acme.logistics.ParcelShipped\n    key_field: parcel_id\n"
    )
    return path


@pytest.mark.integration
def test_produce_generates_samples_of_any_schema_and_reads_json_lines_of_it(
    kafka: str, topic_factory: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEP_SCHEMAS")
    topic = topic_factory(partitions=2, prefix="parcels")
    topology = _service(tmp_path, topic)
    generated = runner.invoke(app, ["produce", topic, "-n", "7", "-b", kafka, "--topology", str(topology)])
    assert generated.exit_code == 0, generated.output
    lines = tmp_path / "parcels.jsonl"
    lines.write_text(
        _jsonl([
            {"parcel_id": "p-1", "weight_grams": 900, "carrier": "POST", "stops": ["Lyon"]},
            {"parcel_id": "p-2", "weight_grams": "heavy", "carrier": "POST", "stops": []},
            {"parcel_id": "p-3", "weight_grams": 5, "carrier": "COURIER", "stops": [], "note": "fragile"},
        ])
    )  # fmt: skip
    from_file = runner.invoke(
        app, ["produce", topic, "-f", str(lines), "-b", kafka, "--topology", str(topology)]
    )
    assert from_file.exit_code == 1
    assert f"{lines}:2: field weight_grams:" in " ".join(from_file.output.split())

    records = read_topic(kafka, topic, expected=9)
    assert {h.header_str(r.headers(), h.EVENT_TYPE) for r in records} == {"acme.logistics.ParcelShipped"}
    keys = {r.key().decode() for r in records}
    assert {"p-1", "p-3"} <= keys and {f"parcel_id-{n}" for n in range(7)} <= keys


@pytest.mark.integration
def test_produce_json_prints_the_summary_only(
    kafka: str, topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = topic_factory(partitions=2, prefix="orders")
    topology = _topology_file(tmp_path, topic, 2, "kep.orders.OrderPlaced")
    args = ["produce", topic, "--count", "10", "-b", kafka, "--topology", str(topology), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # no progress bar mixed in
    assert (summary["topic"], summary["published"], summary["acknowledged"], summary["failed"]) == (
        topic,
        10,
        10,
        0,
    )
    assert sum(summary["per_partition"].values()) == 10
