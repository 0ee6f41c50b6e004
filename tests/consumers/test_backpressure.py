"""A slow handler facing a large backlog: partitions are paused at the in-flight bound, so memory stays flat."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kep.producers.producer import EventProducer
from shop.orders import LineItem, OrderPlaced
from tests.support.processes import effects_worker
from tests.support.runtime import applied_topology
from tests.support.wait import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.integration]

BACKLOG = 60_000
ITEMS = 60  # ~2.5 KB per event: a 150 MB backlog


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_slow_handler_with_a_large_backlog_keeps_rss_bounded(kafka: str, tmp_path: Path) -> None:
    setup = applied_topology(kafka, partitions=3)
    # Distinct random item lists, as real orders: a backlog that compresses like one, not 100:1.
    baskets = [
        [LineItem(sku=os.urandom(12).hex(), quantity=1, unit_price_cents=100) for _ in range(ITEMS)]
        for _ in range(500)
    ]
    with EventProducer(setup.kafka, setup.topology) as producer:
        for i in range(BACKLOG):
            event = OrderPlaced(
                order_id=f"o-{i}", customer_id="c", items=baskets[i % 500], amount_cents=1, currency="EUR"
            )
            producer.publish(event, topic=setup.topic, on_delivery=lambda r, e: None)
    effects = tmp_path / "handled.txt"
    worker = effects_worker(
        setup,
        tmp_path,
        "worker",
        KEP_TEST_PLAIN_EFFECTS=effects,
        KEP_TEST_HANDLER_MS=10,
        KEP_IDEMPOTENCY_STORE="memory://",
        KEP_MAX_IN_FLIGHT=200,
        KEP_PREFETCH_MAX_KBYTES=4096,
    ).start()
    assert worker.proc is not None
    pid = worker.proc.pid
    try:
        # imports done, not yet joined (a join takes seconds): nothing fetched yet
        wait_until(lambda: "worker starting" in worker.log(), timeout=30, message="worker started")
        baseline = rss_bytes(pid)
        peak = [baseline]
        wait_until(lambda: lines(effects) >= 100, timeout=60, message="worker running")

        def sampled() -> bool:
            peak[0] = max(peak[0], rss_bytes(pid))
            return lines(effects) >= 1500

        wait_until(sampled, timeout=90, interval=0.1, message="1500 handled")
        assert lines(effects) < BACKLOG, "the backlog drained: the test proves nothing"
    finally:
        assert worker.terminate(30) == 0, worker.log()
    growth = peak[0] - baseline
    print(f"baseline {baseline / 2**20:.1f} MiB, peak {peak[0] / 2**20:.1f} MiB")
    assert growth < 55 * 1024 * 1024, f"RSS grew by {growth / 2**20:.1f} MiB with a 150 MB backlog"
