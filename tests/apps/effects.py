"""A worker app for crash tests, run in real processes with ``kep run tests.apps.effects:app``.

Its side effect is one row (or list entry) per handled event, written in the idempotency store's own
transaction, so the row and the event's key are committed together. Environment: ``KEP_TEST_TOPIC``,
``KEP_TEST_GROUP``, ``KEP_TEST_EFFECTS`` (the table, list or file suffix), ``KEP_TEST_HANDLER_MS`` (work per
event), ``KEP_TEST_PLAIN_EFFECTS`` (append to a file instead of using a store transaction),
``KEP_TEST_FAIL_ATTEMPTS`` (every event's first N executions raise).
"""

from __future__ import annotations

import os
import time
from typing import Any

from kep.consumers.app import App
from kep.consumers.context import MessageContext
from shop.orders import OrderPlaced

TOPIC = os.environ.get("KEP_TEST_TOPIC", "orders")
EFFECTS = os.environ.get("KEP_TEST_EFFECTS", "effects")
WORK_S = float(os.environ.get("KEP_TEST_HANDLER_MS", "0")) / 1000.0
PLAIN = os.environ.get("KEP_TEST_PLAIN_EFFECTS")
FAIL_ATTEMPTS = int(os.environ.get("KEP_TEST_FAIL_ATTEMPTS", "0"))  # fail every event's first N executions

app = App(os.environ.get("KEP_TEST_GROUP", "effects"), topics=[TOPIC])


class TemporaryOutage(Exception):
    """A retryable failure."""


def write_effect(tx: Any, event_id: str) -> None:
    """The side effect, through whichever store transaction this worker has."""
    module = type(tx).__module__
    if module.startswith("sqlite3"):
        tx.execute(f"CREATE TABLE IF NOT EXISTS {EFFECTS} (event_id TEXT NOT NULL, pid INTEGER)")
        tx.execute(f"INSERT INTO {EFFECTS} (event_id, pid) VALUES (?, ?)", (event_id, os.getpid()))
    elif module.startswith("psycopg"):
        tx.execute(f"INSERT INTO {EFFECTS} (event_id, pid) VALUES (%s, %s)", (event_id, os.getpid()))
    else:  # a redis pipeline in MULTI
        tx.rpush(EFFECTS, event_id)


@app.handler(TOPIC)
def handle(event: OrderPlaced, ctx: MessageContext) -> None:
    if ctx.attempt <= FAIL_ATTEMPTS:
        raise TemporaryOutage(f"attempt {ctx.attempt} of {event.event_id}")
    if WORK_S:
        time.sleep(WORK_S)  # sleep-ok: stands in for the handler's I/O
    if PLAIN:
        with open(PLAIN, "a") as out:
            out.write(f"{event.event_id} {ctx.partition} {ctx.offset}\n")
        return
    with ctx.transaction() as tx:
        write_effect(tx, event.event_id)
