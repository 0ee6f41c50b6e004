"""A lane batch's store writes beside busy lanes: the SQLite store's ``claim_many`` and ``settle_many`` of 500
keys, alone and while another thread of the process runs Python without a pause.

In a worker, the other lanes decode and run handlers while one lane holds the file's write lock. Python's
``sqlite3`` gives up the GIL at every step of a statement, and each time back the writer may wait a whole thread
switch interval (``switch_interval_ms``, 20 ms in a worker) behind a busy lane, with the lock held. So what a
batch costs beside busy lanes is about the number of those steps, not its keys: the states of a batch's keys are
read as one row for that reason (with a row per key this was about 2,000x the time alone; target 200x).
Variants interleaved, median of the rounds; the switch interval is the worker's default. No broker.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench.context import BenchContext
from bench.result import Result
from bench.stats import median
from kep.consumers.idempotency.sqlite import SqliteStore
from kep.consumers.settings import ConsumerSettings

KEYS = 500
#: A row stepped per key gave about 2,000x here; what one row gives, with room for a slower machine.
RATIO_TARGET = 200.0


def _batch(store: SqliteStore) -> float:
    """Seconds for one lane batch's writes: claim the keys, then complete them."""
    keys = [uuid.uuid4().hex for _ in range(KEYS)]
    started = time.perf_counter()
    store.claim_many(keys)
    store.settle_many(keys, ())
    return time.perf_counter() - started


def _beside_a_busy_thread(store: SqliteStore) -> float:
    stop = threading.Event()

    def busy() -> None:
        n = 0
        while not stop.is_set():  # pure Python, no pause: what a lane decoding a backlog looks like
            n += 1

    spinner = threading.Thread(target=busy, name="bench-busy-lane", daemon=True)
    spinner.start()
    try:
        return _batch(store)
    finally:
        stop.set()
        spinner.join()


def run(ctx: BenchContext) -> list[Result]:
    if not ctx.wants("sqlite"):
        return []
    rounds = ctx.scale(5, 2)
    interval = ConsumerSettings().switch_interval_ms / 1000.0
    previous = sys.getswitchinterval()
    alone: list[float] = []
    beside: list[float] = []
    with tempfile.TemporaryDirectory(prefix="kep-bench-store-") as directory:
        store = SqliteStore(Path(directory) / "keys.db", "bench", ttl_s=3600.0, lease_s=60.0)
        sys.setswitchinterval(interval)
        try:
            _batch(store)  # the file and its tables exist before anything is timed
            for _ in range(rounds):
                alone.append(_batch(store))
                beside.append(_beside_a_busy_thread(store))
        finally:
            sys.setswitchinterval(previous)
            store.close()
    ratios = [b / a for a, b in zip(alone, beside, strict=True)]
    note = f"{rounds} rounds, {KEYS} keys, switch interval {interval * 1000:.0f} ms"
    return [
        ctx.result(
            "sqlite claim + settle, 500 keys, alone", median(alone) * 1000, "ms", better="lower", note=note
        ),
        ctx.result(
            "sqlite claim + settle, 500 keys, beside a busy thread",
            median(beside) * 1000,
            "ms",
            better="lower",
        ),
        ctx.result(
            "beside a busy thread / alone",
            median(ratios),
            "x",
            target=RATIO_TARGET,
            better="lower",
            samples=ratios,
        ),
    ]
