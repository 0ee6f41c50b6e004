"""Deterministic sample events of the shop: orders, payments, or each order followed by its payment.

``kep produce`` and ``kep demo`` use ``OrderPlaced.kep_sample`` and ``PaymentCaptured.kep_sample`` (defined
with the models) for realistic values; the benchmarks and the tests use ``sample_events`` directly.

The same ``seed`` (and ``start``) always gives the same events, ids included. ``kind`` picks what to generate:
``orders`` (``OrderPlaced``), ``payments`` (``PaymentCaptured``) or ``mixed`` (each order followed by the
capture of its payment, both keyed by the order id).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import count, islice
from typing import Literal

from kep.schemas import Event
from shop.orders import LineItem, OrderPlaced, PaymentCaptured, PaymentMethod

SampleKind = Literal["orders", "payments", "mixed"]
SAMPLE_KINDS: tuple[SampleKind, ...] = ("orders", "payments", "mixed")

#: Where deterministic timestamps start when no ``start`` is given.
DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)

_SKUS = (
    "SKU-APPLE",
    "SKU-BREAD",
    "SKU-CHEESE",
    "SKU-DATES",
    "SKU-EGGS",
    "SKU-FLOUR",
    "SKU-GRAPES",
    "SKU-HONEY",
)
_CURRENCIES = ("EUR", "USD", "GBP")
_CHANNELS = ("web", "mobile", "store")
_METHODS = tuple(PaymentMethod)
_CUSTOMERS = 500


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def order(rng: random.Random, number: int, seed: int, at: datetime) -> OrderPlaced:
    """One sample order: 1 to 3 lines, its total, a currency and a channel drawn from ``rng``."""
    items = [
        LineItem(sku=rng.choice(_SKUS), quantity=rng.randint(1, 5), unit_price_cents=rng.randint(50, 5000))
        for _ in range(rng.randint(1, 3))
    ]
    return OrderPlaced(
        event_id=_uuid(rng),
        occurred_at=at,
        order_id=f"ord-{seed}-{number:09d}",
        customer_id=f"cust-{rng.randrange(_CUSTOMERS):04d}",
        items=items,
        amount_cents=sum(item.quantity * item.unit_price_cents for item in items),
        currency=rng.choice(_CURRENCIES),
        channel=rng.choice(_CHANNELS),
    )


def payment(rng: random.Random, order: OrderPlaced, at: datetime) -> PaymentCaptured:
    """The capture of ``order``'s payment."""
    return PaymentCaptured(
        event_id=_uuid(rng),
        occurred_at=at,
        payment_id=f"pay-{order.order_id.removeprefix('ord-')}",
        order_id=order.order_id,
        customer_id=order.customer_id,
        amount_cents=order.amount_cents,
        currency=order.currency,
        method=rng.choice(_METHODS),
    )


def iter_sample_events(
    seed: int = 0, kind: SampleKind = "mixed", start: datetime | None = None
) -> Iterator[Event]:
    """An endless, deterministic stream of sample events, one millisecond apart from ``start``."""
    if kind not in SAMPLE_KINDS:
        raise ValueError(f"unknown sample kind {kind!r}; choose one of {', '.join(SAMPLE_KINDS)}")
    rng = random.Random(seed)
    base = start or DEFAULT_START
    tick = 0
    for number in count():
        placed = order(rng, number, seed, base + timedelta(milliseconds=tick))
        tick += 1
        if kind != "payments":
            yield placed
        if kind != "orders":
            yield payment(rng, placed, base + timedelta(milliseconds=tick))
            tick += 1


def sample_events(
    n: int, seed: int = 0, kind: SampleKind = "mixed", start: datetime | None = None
) -> list[Event]:
    """The first ``n`` events of ``iter_sample_events(seed, kind, start)``."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return list(islice(iter_sample_events(seed, kind, start), n))
