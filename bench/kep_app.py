"""The app the consumer benchmarks run with ``kep run bench.kep_app:app``: a no-op handler that counts.

Configured by the environment the benchmark gives the ``kep run`` process: ``BENCH_GROUP``, ``BENCH_TOPIC``,
``BENCH_COUNT`` (events to wait for), ``BENCH_OUT`` (a JSON file written once ``BENCH_COUNT`` events were
handled: the monotonic time from the first to the last, and with ``BENCH_LATENCY=1`` each event's latency in ms,
wall clock at the handler minus the record's CreateTime), ``BENCH_FAIL_EVERY`` (events whose id, read as a
number, is a multiple of it fail on their first attempt) and ``BENCH_RETRY=1`` (also report how late each retry
ran against its ``kep-due-time``). Events with a ``bench-warmup`` header are not counted: the first one handled
creates ``BENCH_OUT`` + ``.started``, so the benchmark knows the worker is consuming.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from kep.consumers.app import App
from kep.consumers.context import MessageContext
from kep.producers import headers as h

GROUP = os.environ.get("BENCH_GROUP", "bench")
TOPIC = os.environ.get("BENCH_TOPIC", "bench")
COUNT = int(os.environ.get("BENCH_COUNT", "0"))
OUT = Path(os.environ.get("BENCH_OUT", "bench-out.json"))
LATENCY = os.environ.get("BENCH_LATENCY") == "1"
FAIL_EVERY = int(os.environ.get("BENCH_FAIL_EVERY", "0"))
RETRIES = COUNT // FAIL_EVERY if FAIL_EVERY else 0

app = App(GROUP, topics=[TOPIC])


class _Flaky(Exception):
    """A first attempt that fails on purpose."""


class _Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.first = 0.0
        self.last = 0.0
        self.seen = 0
        self.retried = 0
        self.latencies: list[int] = []
        self.lateness: list[float] = []
        self.written = False

    def write(self) -> None:
        self.written = True
        data = {
            "count": self.seen,
            "seconds": self.last - self.first,
            "latencies_ms": self.latencies,
            "lateness_ms": self.lateness,
        }
        tmp = OUT.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(OUT)


tally = _Tally()


WARMUP = "bench-warmup"


@app.handler(TOPIC)
def handle(event: Any, ctx: MessageContext) -> None:
    if ctx.header(WARMUP) is not None:
        started = OUT.with_suffix(".started")
        if not started.exists():
            started.touch()
        return
    if ctx.attempt > 1:
        now_ms = time.time() * 1000
        with tally.lock:
            tally.lateness.append(now_ms - (h.header_int(ctx.headers, h.DUE_TIME) or now_ms))
            tally.retried += 1
            if tally.seen >= COUNT and tally.retried >= RETRIES and not tally.written:
                tally.write()
        return
    if LATENCY:
        latency = time.time_ns() // 1_000_000 - ctx.timestamp_ms
    with tally.lock:
        now = time.monotonic()
        if not tally.seen:
            tally.first = now
        tally.seen += 1
        if LATENCY:
            tally.latencies.append(latency)
        if tally.seen == COUNT:
            tally.last = now
            if tally.retried >= RETRIES:
                tally.write()
    if FAIL_EVERY and int(event.event_id[-8:], 16) % FAIL_EVERY == 0:
        raise _Flaky("fails once")
