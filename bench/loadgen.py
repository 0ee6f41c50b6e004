"""A constant-rate HTTP load generator: ``python -m bench.loadgen URL --rate 1000 --seconds 30``.

Open model: request ``i`` is due at ``start + i / rate`` and is sent then, whether or not earlier ones were
answered (on one of at most ``--connections`` kept-alive connections; it waits for one when all are busy).
Its latency is measured from the moment it was due, not from when it went out, so a stalled server shows in
the figures instead of slowing the load down (no coordinated omission). Runs in its own process, on aiohttp
and uvloop; prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections import Counter
from typing import Any

import aiohttp


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


async def _run(
    url: str, rate: float, seconds: float, warmup: float, body: bytes, key_prefix: str, connections: int
) -> dict[str, Any]:
    interval = 1.0 / rate
    total = int((warmup + seconds) * rate)
    measured_from = int(warmup * rate)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    headers = {"Content-Type": "application/json"}
    # A fixed pool, as wrk2 keeps: a slow server makes requests wait for a connection (counted in their
    # latency, which runs from when each was due) instead of drowning it in new connections.
    connector = aiohttp.TCPConnector(limit=connections, ttl_dns_cache=None, keepalive_timeout=30)
    timeout = aiohttp.ClientTimeout(total=30)
    late_starts = 0
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(i: int, due: float) -> None:
            request_headers = {**headers, "Idempotency-Key": f"{key_prefix}-{i}"} if key_prefix else headers
            try:
                async with session.post(url, data=body, headers=request_headers) as response:
                    await response.read()
                    status = str(response.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = type(exc).__name__
            if i >= measured_from:
                latencies.append(time.perf_counter() - due)
                statuses[status] += 1

        loop = asyncio.get_running_loop()
        tasks = set()
        start = time.perf_counter() + 0.05
        for i in range(total):
            due = start + i * interval
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -0.005:
                late_starts += 1
            task = loop.create_task(one(i, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        sent_in = time.perf_counter() - start
        if tasks:
            await asyncio.gather(*tasks)
    latencies.sort()
    return {
        "requests": len(latencies),
        "offered_rate": rate,
        "sent_rate": total / sent_in if sent_in > 0 else float("nan"),
        "late_starts": late_starts,
        "statuses": dict(statuses),
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p90_ms": _percentile(latencies, 0.90) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "max_ms": (latencies[-1] if latencies else float("nan")) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=1000.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured duration")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds at the rate before measuring")
    parser.add_argument("--body", type=argparse.FileType("rb"), required=True, help="the request body (JSON)")
    parser.add_argument("--keys", action="store_true", help="a unique Idempotency-Key on every request")
    parser.add_argument("--connections", type=int, default=100, help="connections kept open, at most")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    prefix = uuid.uuid4().hex[:8] if args.keys else ""
    body = args.body.read()
    result = asyncio.run(_run(args.url, args.rate, args.seconds, args.warmup, body, prefix, args.connections))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
