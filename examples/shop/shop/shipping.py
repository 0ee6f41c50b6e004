"""The ``shipping`` group of the shop's topology: ships an order once it is placed and its payment captured.

Run it from ``examples/shop``: ``kep run shop.shipping:app -t topology.yaml``. It keeps the state of each
order in memory, which is enough for a demonstration; a real app would keep it in its database, written
through ``ctx.transaction()``.
"""

from __future__ import annotations

import structlog

from kep.consumers import App, MessageContext
from shop.orders import OrderPlaced, PaymentCaptured

log = structlog.get_logger(__name__)
app = App("shipping", topics=["orders", "payments"])
_paid: set[str] = set()
_placed: set[str] = set()


def _ship_if_ready(order_id: str) -> None:
    if order_id in _paid and order_id in _placed:
        log.debug("shipped", order_id=order_id)


@app.handler(event=OrderPlaced)
def placed(order: OrderPlaced, ctx: MessageContext) -> None:
    _placed.add(order.order_id)
    _ship_if_ready(order.order_id)


@app.handler(event=PaymentCaptured)
def paid(payment: PaymentCaptured, ctx: MessageContext) -> None:
    _paid.add(payment.order_id)
    _ship_if_ready(payment.order_id)
