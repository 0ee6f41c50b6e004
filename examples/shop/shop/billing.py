"""The ``billing`` group of the shop's topology: bills every placed order.

Run it from ``examples/shop``: ``kep run shop.billing:app -t topology.yaml``. Set
``KEP_EXAMPLE_FAILURE_RATE=0.1`` to make one first attempt in ten fail, and watch those orders go through the
first retry topic (``orders.billing.retry.1s``) and succeed there.
"""

from __future__ import annotations

import os
import random

import structlog

from kep.consumers import App, MessageContext
from shop.orders import OrderPlaced

log = structlog.get_logger(__name__)
app = App("billing", topics=["orders"])
_failure_rate = float(os.environ.get("KEP_EXAMPLE_FAILURE_RATE", "0") or 0)


class PaymentGatewayUnavailable(Exception):
    """A transient failure: retried through the retry topics."""


@app.handler("orders")
def bill(order: OrderPlaced, ctx: MessageContext) -> None:
    if _failure_rate and ctx.attempt == 1 and random.random() < _failure_rate:
        raise PaymentGatewayUnavailable(f"gateway timeout billing order {order.order_id}")
    total = sum(item.quantity * item.unit_price_cents for item in order.items)
    log.debug("billed", order_id=order.order_id, total_cents=total, attempt=ctx.attempt)
