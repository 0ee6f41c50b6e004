"""The raw confluent-kafka loop the consumer benchmarks measure kep against, as a process of its own:
``python -m bench.raw_loop`` (so that, like the ``kep run`` process, it shares nothing with the benchmark's
producer).

Subscribe, ``consume(500, BENCH_CONSUME_TIMEOUT_S)``, fastavro decode of each value to a dict, a synchronous
commit after each batch. With ``BENCH_FIRST_RECORD=1`` it fetches as kep does (what the client holds at once,
else a wait for the first record, then the rest at once). ``BENCH_FETCH_WAIT_MAX_MS`` sets
``fetch.wait.max.ms``. Same environment as ``bench/kep_app.py``: ``BENCH_BOOTSTRAP``, ``BENCH_TOPIC``,
``BENCH_COUNT``, ``BENCH_OUT``, ``BENCH_LATENCY``; events with a ``bench-warmup`` header are not counted.
It reports its process CPU time from the first counted event to the last (every thread, librdkafka's too).
"""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from pathlib import Path

import fastavro
from confluent_kafka import Consumer

from kep.schemas.registry import LocalSchemaRegistry

WARMUP = "bench-warmup"


def main() -> None:
    env = os.environ
    count = int(env["BENCH_COUNT"])
    out = Path(env["BENCH_OUT"])
    latency = env.get("BENCH_LATENCY") == "1"
    first_record = env.get("BENCH_FIRST_RECORD") == "1"
    timeout = float(env.get("BENCH_CONSUME_TIMEOUT_S", "0.1"))
    schema = LocalSchemaRegistry.default().latest("kep.orders.OrderPlaced").parsed
    consumer = Consumer(
        {
            "bootstrap.servers": env["BENCH_BOOTSTRAP"],
            "group.id": f"raw-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": int(env.get("BENCH_FETCH_WAIT_MAX_MS", "100")),
        }
    )
    consumer.subscribe([env["BENCH_TOPIC"]])
    seen, first, cpu_first, latencies = 0, 0.0, 0.0, []
    started = out.with_suffix(".started")
    while seen < count:
        if first_record:
            batch = consumer.consume(500, 0)
            if not batch:
                batch = consumer.consume(1, timeout)
                if batch:
                    batch += consumer.consume(499, 0)
        else:
            batch = consumer.consume(500, timeout)
        if not batch:
            continue
        for msg in batch:
            if msg.error() is not None:
                continue
            now_ms = time.time_ns() // 1_000_000
            fastavro.schemaless_reader(io.BytesIO(msg.value()[10:]), schema, None)  # type: ignore[index]
            headers = msg.headers()
            if headers and any(name == WARMUP for name, _ in headers):
                if not started.exists():
                    started.touch()
                continue
            if not seen:
                first = time.monotonic()
                cpu_first = time.process_time()
            seen += 1
            if latency:
                latencies.append(now_ms - msg.timestamp()[1])
        consumer.commit(asynchronous=False)
    seconds = time.monotonic() - first
    cpu_s = time.process_time() - cpu_first
    consumer.close()
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"count": seen, "seconds": seconds, "cpu_s": cpu_s, "latencies_ms": latencies}))
    tmp.replace(out)


if __name__ == "__main__":
    main()
