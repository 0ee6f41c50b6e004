"""A worker app with a limited and an unlimited topic, run in real processes with ``kep run tests.apps.limited:app``.

Each handler appends ``<topic> <start> <end> <event id>`` (wall-clock seconds) to ``$KEP_TEST_RECORDS/<pid>.txt``.
Environment: ``KEP_TEST_LIMITED``, ``KEP_TEST_FREE`` (topics), ``KEP_TEST_GROUP``, ``KEP_TEST_RECORDS`` (a
directory), ``KEP_TEST_HANDLER_MS`` (work per limited event). The limits come from the topology.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from kep.consumers.app import App
from kep.consumers.context import MessageContext
from shop.orders import OrderPlaced

LIMITED = os.environ.get("KEP_TEST_LIMITED", "limited")
FREE = os.environ.get("KEP_TEST_FREE", "free")
RECORDS = Path(os.environ.get("KEP_TEST_RECORDS", "."))
WORK_S = float(os.environ.get("KEP_TEST_HANDLER_MS", "0")) / 1000.0

app = App(os.environ.get("KEP_TEST_GROUP", "limited"), topics=[LIMITED, FREE])


def _record(topic: str, start: float, event_id: str) -> None:
    line = f"{topic} {start:.6f} {time.time():.6f} {event_id}\n"
    with open(RECORDS / f"{os.getpid()}.txt", "a") as out:
        out.write(line)


@app.handler(LIMITED)
def limited(event: OrderPlaced, ctx: MessageContext) -> None:
    start = time.time()
    if WORK_S:
        time.sleep(WORK_S)  # sleep-ok: stands in for the call to a third party
    _record(LIMITED, start, event.event_id)


@app.handler(FREE)
def free(event: OrderPlaced, ctx: MessageContext) -> None:
    _record(FREE, time.time(), event.event_id)
