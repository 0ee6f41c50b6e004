"""A worker app for the delayed-event tests, run with ``kep run tests.apps.delayed:app``.

Each handled event adds one row ``(event_id, handled_ms)`` in the SQLite idempotency store's own transaction, so
the row and the event's key are committed together: a redelivered event (a forward repeated after a crash) is a
duplicate and adds nothing. Environment: ``KEP_TEST_TOPIC``, ``KEP_TEST_GROUP``, ``KEP_TEST_EFFECTS`` (table).
"""

from __future__ import annotations

import os
import time

from kep.consumers.app import App
from kep.consumers.context import MessageContext
from shop.orders import OrderPlaced

TOPIC = os.environ.get("KEP_TEST_TOPIC", "orders")
EFFECTS = os.environ.get("KEP_TEST_EFFECTS", "handled")

app = App(os.environ.get("KEP_TEST_GROUP", "delayed"), topics=[TOPIC])


@app.handler(TOPIC)
def handle(event: OrderPlaced, ctx: MessageContext) -> None:
    handled_ms = time.time_ns() // 1_000_000
    with ctx.transaction() as tx:
        tx.execute(f"CREATE TABLE IF NOT EXISTS {EFFECTS} (event_id TEXT NOT NULL, handled_ms INTEGER)")
        tx.execute(
            f"INSERT INTO {EFFECTS} (event_id, handled_ms) VALUES (?, ?)", (event.event_id, handled_ms)
        )
