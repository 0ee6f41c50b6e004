"""A worker app whose startup and shutdown hooks leave a trace, run with ``kep run tests.apps.hooks:app``.

Each step appends ``<step> <pid>`` to the file ``KEP_TEST_HOOKS_LOG``: ``import`` when the module is imported,
``startup`` and ``shutdown`` from the hooks, ``handle`` per event. ``KEP_TEST_HOOK_FAIL=1`` makes the startup
hook raise with a connection URL (password included) in its message. Environment as ``tests.apps.effects``:
``KEP_TEST_TOPIC``, ``KEP_TEST_GROUP``.
"""

from __future__ import annotations

import os

from kep.consumers.app import App
from kep.consumers.context import MessageContext
from shop.orders import OrderPlaced

LOG = os.environ.get("KEP_TEST_HOOKS_LOG")  # unset (a test importing the module): no trace
TOPIC = os.environ.get("KEP_TEST_TOPIC", "orders")
SECRET_URL = "postgresql://kep:hunter2@db.internal/pool"


def trace(step: str) -> None:
    if LOG is None:
        return
    with open(LOG, "a") as out:
        out.write(f"{step} {os.getpid()}\n")


trace("import")  # what the supervisor of several processes runs too
app = App(os.environ.get("KEP_TEST_GROUP", "hooks"), topics=[TOPIC])


@app.on_startup
def connect() -> None:
    if os.environ.get("KEP_TEST_HOOK_FAIL") == "1":
        raise RuntimeError(f"pool refused: {SECRET_URL}")
    trace("startup")


@app.on_shutdown
def disconnect() -> None:
    trace("shutdown")


@app.handler(TOPIC)
def handle(event: OrderPlaced, ctx: MessageContext) -> None:
    trace("handle")
