"""The app the consumer benchmarks run with ``kep run bench.kep_app:app``: a no-op handler that counts.

Configured by the environment the benchmark gives the ``kep run`` process: ``BENCH_GROUP``, ``BENCH_TOPIC``,
``BENCH_OUT``, ``BENCH_LATENCY=1`` (keep each event's latency in ms, wall clock at the handler minus the
record's CreateTime), ``BENCH_FAIL_EVERY`` (events whose id, read as a number, is a multiple of it fail on their
first attempt) and ``BENCH_RETRY=1`` (also keep how late each retry ran against its ``kep-due-time``).

``kep run`` may run several worker processes (``KEP_PROCESS_INDEX`` of ``KEP_PROCESS_COUNT``); each counts
what it handles. Process ``i`` writes ``BENCH_OUT.i.count`` (events and retries so far, as they change) and,
once the benchmark creates ``BENCH_OUT.done``, its whole tally to ``BENCH_OUT.i.json``: the monotonic time
of its first and last event (the clock is the host's, shared by the processes) and the latencies. Events with
a ``bench-warmup`` header are not counted: the first one a process handles creates ``BENCH_OUT.started.i``
(holding the process count), so the benchmark knows when every process is consuming. The tally also holds the
process's CPU time (every thread) from its first counted event to the last change of its counts the reporting
thread saw (at most ``REPORT_EVERY_S`` after the last event; a clock read per event would slow what it measures).
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
OUT = Path(os.environ.get("BENCH_OUT", "bench-out.json"))
LATENCY = os.environ.get("BENCH_LATENCY") == "1"
FAIL_EVERY = int(os.environ.get("BENCH_FAIL_EVERY", "0"))
INDEX = int(os.environ.get("KEP_PROCESS_INDEX", "0"))
PROCESSES = int(os.environ.get("KEP_PROCESS_COUNT", "1"))
#: Seconds between two looks at the tally by the reporting thread.
REPORT_EVERY_S = 0.05

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
        self.cpu_first = 0.0
        self.cpu_last = 0.0
        self.latencies: list[int] = []
        self.lateness: list[float] = []
        self._reporting = False

    def start_reporting(self) -> None:
        """Start ``report`` on a thread of its own, once: on the first event, so only a process that runs
        handlers reports (``kep run``'s supervisor imports the app too)."""
        if self._reporting:
            return
        with self.lock:
            if self._reporting:
                return
            self._reporting = True
        threading.Thread(target=self.report, name="bench-report", daemon=True).start()

    def report(self) -> None:
        """Write this process's counts as they change until the benchmark says done, then its tally."""
        counts, done = _mark(f"{INDEX}.count"), _mark("done")
        written: tuple[int, int] | None = None
        while not done.exists():
            with self.lock:
                now = (self.seen, self.retried)
            if now != written:
                self.cpu_last = time.process_time()
                _write(counts, {"seen": now[0], "retried": now[1]})
                written = now
            time.sleep(REPORT_EVERY_S)  # sleep-ok: the pace of a report file, not a synchronisation
        with self.lock:
            data = {
                "count": self.seen,
                "retried": self.retried,
                "first": self.first,
                "last": self.last,
                "cpu_s": max(0.0, self.cpu_last - self.cpu_first) if self.seen else 0.0,
                "latencies_ms": self.latencies,
                "lateness_ms": self.lateness,
            }
        _write(_mark(f"{INDEX}.json"), data)


def _mark(suffix: str) -> Path:
    return OUT.with_name(f"{OUT.name}.{suffix}")


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


tally = _Tally()


WARMUP = "bench-warmup"


@app.handler(TOPIC)
def handle(event: Any, ctx: MessageContext) -> None:
    tally.start_reporting()
    if ctx.header(WARMUP) is not None:
        started = _mark(f"started.{INDEX}")
        if not started.exists():
            _write(started, {"processes": PROCESSES})
        return
    if ctx.attempt > 1:
        now_ms = time.time() * 1000
        with tally.lock:
            tally.lateness.append(now_ms - (h.header_int(ctx.headers, h.DUE_TIME) or now_ms))
            tally.retried += 1
        return
    if LATENCY:
        latency = time.time_ns() // 1_000_000 - ctx.timestamp_ms
    with tally.lock:
        now = time.monotonic()
        if not tally.seen:
            tally.first = now
            tally.cpu_first = time.process_time()
        tally.seen += 1
        tally.last = now
        if LATENCY:
            tally.latencies.append(latency)
    if FAIL_EVERY and int(event.event_id[-8:], 16) % FAIL_EVERY == 0:
        raise _Flaky("fails once")
