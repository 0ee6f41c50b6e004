"""The HTTP intake: latency of ``POST /events/kep.orders.OrderPlaced`` from request to 202 at a steady rate.

Three processes besides the broker: the intake (``kep ingest``, the shipped defaults), the floor (the same
server stack with an endpoint that answers 202 at once, ``bench/ingest_floor.py``) and the load generator
(``bench/loadgen.py``: aiohttp, open model, latency measured from when each request was due). Each server gets
the same load in turn, 1,000 requests/s for 30 s after a 3 s warm-up; every intake request has its own
Idempotency-Key. A 202 from the intake means the broker acknowledged the record (acks=all).

Figures: p50 and p99 of both, the p99 target (50 ms), the ratio of the intake's p99 to the floor's, and the
answers that were not 202 (target 0).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.context import BenchContext
from bench.result import Result
from kep.broker import free_port
from kep.topology.model import TopicSpec, Topology

RATE = 1000.0
P99_TARGET_MS = 50.0
ROOT = Path(__file__).resolve().parents[1]
BODY = {
    "order_id": "o-1001",
    "customer_id": "c-42",
    "items": [{"sku": "SKU-1", "quantity": 2, "unit_price_cents": 600}],
    "amount_cents": 1200,
    "currency": "EUR",
}


def _wait_ready(proc: subprocess.Popen[bytes], url: str, timeout: float = 60.0) -> None:
    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {proc.returncode}")
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    end = time.monotonic() + timeout
    while not up():
        if time.monotonic() > end:
            raise RuntimeError(f"{url}: not ready after {timeout:g}s")
        time.sleep(0.1)  # sleep-ok: polling interval of a bounded wait for a server to listen


@contextmanager
def _server(argv: list[str], ready_url: str, log: Path) -> Iterator[None]:
    env = {**os.environ, "KEP_LOG_FORMAT": "json", "KEP_LOG_LEVEL": "WARNING"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(proc, ready_url)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _load(url: str, body: Path, seconds: float, *, keys: bool) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench.loadgen", url, "--rate", str(RATE), "--seconds", str(seconds)]
    argv += ["--body", str(body)] + (["--keys"] if keys else [])
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, check=True, timeout=seconds + 120)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def run(ctx: BenchContext) -> list[Result]:
    seconds = float(ctx.scale(30, 5))
    topic = ctx.topic(partitions=6, prefix="bench-ingest")
    topology = Topology(
        topics=(
            TopicSpec(name=topic, partitions=6, value_schema="kep.orders.OrderPlaced", key_field="order_id"),
        )
    )
    with tempfile.TemporaryDirectory(prefix="kep-bench-ingest-") as tmp:
        work = Path(tmp)
        topology_file = work / "topology.yaml"
        topology_file.write_text(yaml.safe_dump(topology.model_dump(mode="json", exclude_defaults=True)))
        body = work / "order.json"
        body.write_bytes(json.dumps(BODY).encode())

        port = free_port()
        floor_argv = [sys.executable, "-m", "bench.ingest_floor", str(port)]
        with _server(floor_argv, f"http://127.0.0.1:{port}/openapi.json", work / "floor.log"):
            floor = _load(f"http://127.0.0.1:{port}/floor", body, seconds, keys=False)

        port = free_port()
        intake_argv = [
            sys.executable, "-m", "kep.cli.main", "ingest", "--topology", str(topology_file),
            "-b", ctx.bootstrap_servers, "--port", str(port), "--status-store", "none",
        ]  # fmt: skip
        with _server(intake_argv, f"http://127.0.0.1:{port}/readyz", work / "intake.log"):
            intake = _load(f"http://127.0.0.1:{port}/events/kep.orders.OrderPlaced", body, seconds, keys=True)

    load = os.getloadavg()[0]
    not_202 = sum(n for status, n in intake["statuses"].items() if status != "202")
    note = (
        f"{RATE:,.0f} req/s for {seconds:g} s; sent at {intake['sent_rate']:,.0f} req/s; "
        f"host load average {load:.1f} on {os.cpu_count()} CPUs"
    )
    return [
        ctx.result(
            "floor p50", floor["p50_ms"], "ms", better="lower", note="same stack, endpoint does nothing"
        ),
        ctx.result("floor p99", floor["p99_ms"], "ms", better="lower"),
        ctx.result("intake p50 (request to 202)", intake["p50_ms"], "ms", better="lower", note=note),
        ctx.result(
            "intake p99 (request to 202)", intake["p99_ms"], "ms", target=P99_TARGET_MS, better="lower"
        ),
        ctx.result("intake max", intake["max_ms"], "ms", better="lower"),
        ctx.result("intake p99 / floor p99", intake["p99_ms"] / floor["p99_ms"], "x", better="lower"),
        ctx.result("intake p50 / floor p50", intake["p50_ms"] / floor["p50_ms"], "x", better="lower"),
        ctx.result(
            "intake answers other than 202",
            float(not_202),
            "requests",
            target=0.0,
            better="lower",
            note=json.dumps(intake["statuses"]),
        ),  # fmt: skip
    ]
