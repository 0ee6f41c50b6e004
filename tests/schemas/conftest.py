"""Fixtures for the schemas tests: sample events and throw-away schema directories."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shop.orders import LineItem, OrderPlaced, PaymentCaptured, PaymentMethod
from tests.support.shop import SHOP_SCHEMAS

SchemaDir = Callable[[dict[str, Any]], Path]


@pytest.fixture
def order() -> OrderPlaced:
    return OrderPlaced(
        order_id="o-1001",
        customer_id="c-42",
        items=[
            LineItem(sku="BOOK-1", quantity=2, unit_price_cents=1250),
            LineItem(sku="PEN-7", quantity=1, unit_price_cents=199),
        ],
        amount_cents=2699,
        currency="EUR",
        channel="mobile",
    )


@pytest.fixture
def payment() -> PaymentCaptured:
    return PaymentCaptured(
        payment_id="p-9",
        order_id="o-1001",
        customer_id="c-42",
        amount_cents=2699,
        currency="EUR",
        method=PaymentMethod.WALLET,
    )


def shipped(file_name: str) -> dict[str, Any]:
    """A deep copy of one packaged .avsc file."""
    data: dict[str, Any] = json.loads((SHOP_SCHEMAS / file_name).read_text())
    return copy.deepcopy(data)


@pytest.fixture
def schema_dir(tmp_path: Path) -> SchemaDir:
    """``schema_dir({"a.b.X.v1.avsc": {...} or "raw text"})`` writes the files into a fresh directory."""

    def make(files: dict[str, Any]) -> Path:
        directory = tmp_path / f"schemas{len(list(tmp_path.iterdir()))}"
        directory.mkdir()
        for name, content in files.items():
            text = content if isinstance(content, str) else json.dumps(content, indent=2)
            (directory / name).write_text(text)
        return directory

    return make


def reference_body(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    """The Avro binary body fastavro itself writes for ``record`` with ``schema`` (an .avsc dict)."""
    import io

    from fastavro import parse_schema, schemaless_writer

    out = io.BytesIO()
    schemaless_writer(out, parse_schema(schema), record)
    return out.getvalue()


def v1_record(order: OrderPlaced) -> dict[str, Any]:
    """What an old producer, built against OrderPlaced v1 (no ``channel``), would have written."""
    return order.model_dump(exclude={"channel"})
