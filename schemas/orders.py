"""The example domain, namespace ``kep.orders``: an order is placed, then its payment is captured.

Each model mirrors the newest ``.avsc`` of its name in ``schemas/avro`` (a test keeps them equal). Both events
are keyed by ``order_id``, so everything about one order lands on one partition, in order.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from kep.schemas.events import AvroRecord, Event
from kep.schemas.model_schema import Int32

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
