"""A worker app whose handler publishes a follow-up event through the outbox, for the outbox's tests.

Run in real processes with ``kep run tests.apps.outbox:app``. For each ``OrderPlaced`` it writes one row to
the effects table and, in the same ``ctx.transaction()``, publishes a ``PaymentCaptured`` for the same order
to ``KEP_TEST_FOLLOW_TOPIC`` with ``ctx.publish``. The payment's event id is derived from the order's, so a
second copy (were there one) would carry the same id. Environment: ``KEP_TEST_TOPIC``, ``KEP_TEST_GROUP``,
``KEP_TEST_FOLLOW_TOPIC``, ``KEP_TEST_EFFECTS`` (table), ``KEP_TEST_HANDLER_MS`` (work per event).
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from kep.consumers.app import App
from kep.consumers.context import MessageContext
from shop.orders import OrderPlaced, PaymentCaptured, PaymentMethod

TOPIC = os.environ.get("KEP_TEST_TOPIC", "orders")
FOLLOW = os.environ.get("KEP_TEST_FOLLOW_TOPIC", "payments")
EFFECTS = os.environ.get("KEP_TEST_EFFECTS", "effects")
WORK_S = float(os.environ.get("KEP_TEST_HANDLER_MS", "0")) / 1000.0

app = App(os.environ.get("KEP_TEST_GROUP", "outbox"), topics=[TOPIC])


def payment_for(order: OrderPlaced) -> PaymentCaptured:
    return PaymentCaptured(
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"payment/{order.event_id}")),
        payment_id=f"pay-{order.order_id}",
        order_id=order.order_id,
        customer_id=order.customer_id,
        amount_cents=order.amount_cents,
        currency=order.currency,
        method=PaymentMethod.CARD,
    )


def write_effect(tx: Any, event_id: str) -> None:
    if type(tx).__module__.startswith("sqlite3"):
        tx.execute(f"CREATE TABLE IF NOT EXISTS {EFFECTS} (event_id TEXT NOT NULL)")
        tx.execute(f"INSERT INTO {EFFECTS} (event_id) VALUES (?)", (event_id,))
    else:
        tx.execute(f"INSERT INTO {EFFECTS} (event_id) VALUES (%s)", (event_id,))


@app.handler(TOPIC)
def handle(order: OrderPlaced, ctx: MessageContext) -> None:
    if WORK_S:
        time.sleep(WORK_S)  # sleep-ok: stands in for the handler's I/O
    with ctx.transaction() as tx:
        write_effect(tx, order.event_id)
        ctx.publish(payment_for(order), topic=FOLLOW)
