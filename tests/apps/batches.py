"""A worker app for the status and batch tests, run in a thread or with ``kep run tests.apps.batches:app``.

Environment: ``KEP_TEST_TOPIC``, ``KEP_TEST_GROUP``; ``KEP_TEST_FAIL_FIRST`` (comma-separated order ids whose
first attempt fails), ``KEP_TEST_FAIL_ALWAYS`` (order ids that fail every attempt, with ``PermanentError``,
until the file ``KEP_TEST_FIXED`` exists), ``KEP_TEST_HANDLER_MS`` (work per event).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from kep.consumers.app import App
from kep.consumers.context import MessageContext
from shop.orders import OrderPlaced

TOPIC = os.environ.get("KEP_TEST_TOPIC", "orders")
FAIL_FIRST = set(filter(None, os.environ.get("KEP_TEST_FAIL_FIRST", "").split(",")))
FAIL_ALWAYS = set(filter(None, os.environ.get("KEP_TEST_FAIL_ALWAYS", "").split(",")))
FIXED = os.environ.get("KEP_TEST_FIXED", "")
WORK_S = float(os.environ.get("KEP_TEST_HANDLER_MS", "0")) / 1000.0

app = App(os.environ.get("KEP_TEST_GROUP", "batches"), topics=[TOPIC])


class TemporaryOutage(Exception):
    """Retryable."""


class PermanentError(Exception):
    """Fails until fixed."""


@app.handler(TOPIC)
def handle(order: OrderPlaced, ctx: MessageContext) -> None:
    if WORK_S:
        time.sleep(WORK_S)  # sleep-ok: stands in for the handler's I/O
    if order.order_id in FAIL_ALWAYS and not (FIXED and Path(FIXED).exists()):
        raise PermanentError(f"order {order.order_id} cannot be billed")
    if order.order_id in FAIL_FIRST and ctx.attempt == 1:
        raise TemporaryOutage(f"first attempt of {order.order_id}")
