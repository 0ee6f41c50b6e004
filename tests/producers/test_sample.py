"""Sample events of any event type, from its Avro schema or its own ``kep_sample``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from pydantic import Field

from kep.producers import SampleError, sample_events
from kep.schemas import Event, model_from_schema
from shop.orders import OrderPlaced, PaymentCaptured

pytestmark = pytest.mark.unit

EVERY_TYPE: dict[str, Any] = {
    "type": "record",
    "name": "Everything",
    "namespace": "kep.tests.samples",
    "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "occurred_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "s", "type": "string"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "b", "type": "boolean"},
        {"name": "raw", "type": "bytes"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
        {"name": "items", "type": {"type": "array", "items": {"type": "record", "name": "Item",
                                                              "fields": [{"name": "kind", "type": "Kind"}]}}},
        {"name": "counts", "type": {"type": "map", "values": "long"}},
        {"name": "maybe", "type": ["null", "Item"], "default": None},
    ],
}  # fmt: skip


def test_samples_of_a_schema_are_deterministic_and_valid() -> None:
    model = model_from_schema(EVERY_TYPE)
    start = datetime(2025, 5, 1, tzinfo=UTC)
    first = sample_events([model], 20, seed=4, start=start)
    assert first == sample_events([model], 20, seed=4, start=start)
    assert first != sample_events([model], 20, seed=5, start=start)
    event = first[3]
    assert type(event) is model and event.s == "s-3" and event.occurred_at.microsecond == 3000  # type: ignore[attr-defined]
    assert 1 <= len(event.items) <= 3 and event.maybe is not None  # type: ignore[attr-defined]
    assert len({e.event_id for e in first}) == 20


def test_samples_cycle_through_the_types_and_use_their_own_kep_sample() -> None:
    events = sample_events([OrderPlaced, PaymentCaptured], 4)
    assert [type(e) for e in events] == [OrderPlaced, PaymentCaptured, OrderPlaced, PaymentCaptured]
    assert all(len(e.currency) == 3 for e in events)  # type: ignore[attr-defined]


def test_a_model_whose_rules_the_generic_values_break_is_told_to_define_kep_sample() -> None:
    class Strict(Event):
        avro_name: ClassVar[str] = "kep.tests.samples.Strict"
        code: str = Field(pattern=r"^[A-Z]{3}$")

    with pytest.raises(
        SampleError, match=r"kep\.tests\.samples\.Strict .*code: String should match .*kep_sample"
    ):
        sample_events([Strict], 1)
