"""The shop's events, namespace ``kep.orders``: an order is placed, then its payment is captured.

Hand-written models, for their validation rules (a currency is three capital letters, an order has at least
one line). A service may skip this file: ``LocalSchemaRegistry.model(name)`` builds a model from the schema.
Each model mirrors the newest ``.avsc`` of its name in ``../schemas`` (``kep schemas check --import
shop.orders`` and the codecs check it). Both events are keyed by ``order_id``, so everything about one order
lands on one partition, in order.

``kep_sample`` is what ``kep produce`` and ``kep demo`` call for sample events of a type that defines it
(otherwise they generate values from the Avro types, which these validation rules would refuse).
"""

from __future__ import annotations

import random
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from kep.schemas import AvroRecord, Event, Int32

__all__ = ["LineItem", "OrderPlaced", "PaymentCaptured", "PaymentMethod"]


class LineItem(AvroRecord):
    """One line of an order."""

    sku: str = Field(min_length=1, description="Stock keeping unit.")
    quantity: Int32 = Field(ge=1, description="Units ordered.")
    unit_price_cents: int = Field(ge=0, description="Price of one unit, in cents of the order currency.")


class OrderPlaced(Event):
    """A customer placed an order."""

    avro_name: ClassVar[str] = "kep.orders.OrderPlaced"
    key_field: ClassVar[str | None] = "order_id"

    order_id: str = Field(min_length=1, description="The order.")
    customer_id: str = Field(min_length=1, description="Who placed it.")
    items: list[LineItem] = Field(min_length=1, description="What was ordered.")
    amount_cents: int = Field(ge=0, description="Order total, in cents.")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code, e.g. EUR.")
    channel: str = Field("web", description="Where the order was placed: web, mobile or store. Added in v2.")

    @classmethod
    def kep_sample(cls, rng: random.Random, number: int, at: datetime) -> OrderPlaced:
        """A realistic sample order (``kep produce``, ``kep demo``)."""
        from shop.samples import order

        return order(rng, number, 0, at)


class PaymentMethod(StrEnum):
    """How a payment was made."""

    CARD = "CARD"
    BANK_TRANSFER = "BANK_TRANSFER"
    WALLET = "WALLET"


class PaymentCaptured(Event):
    """The payment for an order was captured."""

    avro_name: ClassVar[str] = "kep.orders.PaymentCaptured"
    key_field: ClassVar[str | None] = "order_id"

    payment_id: str = Field(min_length=1, description="The payment.")
    order_id: str = Field(min_length=1, description="The order it pays for.")
    customer_id: str = Field(min_length=1, description="Who paid.")
    amount_cents: int = Field(ge=0, description="Amount captured, in cents.")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code, e.g. EUR.")
    method: PaymentMethod = Field(description="How it was paid.")

    @classmethod
    def kep_sample(cls, rng: random.Random, number: int, at: datetime) -> PaymentCaptured:
        """The payment of a realistic sample order (``kep produce``, ``kep demo``)."""
        from shop.samples import order, payment

        return payment(rng, order(rng, number, 0, at), at)
