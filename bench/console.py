"""Console: searching 100,000 dead letters, through the console's HTTP page and its index directly.

Set-up on the bench broker: a source topic and a group whose dead-letter topic (6 partitions) holds 100,000
dead letters with kep's provenance headers: 5 exception types, 1,000 customers, unique keys and event ids,
dead-lettering times over one day.

Figures:

* ``index 100,000 (from empty)``: a console that starts on that topic reads it once into its SQLite index
  (the background poller does this as soon as it starts; the figure is how long until searches see all).
* ``search first page, HTTP (<filter>)``: ``GET /dead-letters/{topic}?<filter>`` on a running console whose
  index is current: the page a user waits for, including the request's check for new records on the topic.
  Target: under 2 s. The median of several trials per filter; the reported figure is the slowest filter.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path

import httpx
from confluent_kafka import Producer

from bench.context import BenchContext
from bench.result import Result
from bench.stats import median
from kep.console.app import create_app
from kep.console.index import DeadLetterIndex, Query
from kep.console.server import BackgroundServer, uvicorn_config
from kep.console.settings import ConsoleSettings
from kep.consumers.retry.headers import Provenance
from kep.producers import headers as h
from kep.schemas.codec import codec_for
from kep.topology import admin
from kep.topology.model import ConsumerGroupSpec, TopicSpec, Topology
from kep.topology.settings import KafkaSettings
from shop.orders import LineItem, OrderPlaced

TARGET_MS = 2000.0
PARTITIONS = 6
EXCEPTIONS = ["TimeoutError", "KeyError", "ValueError", "ConnectionError", "RuntimeError"]
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _fill(
    ctx: BenchContext, topology: Topology, dlq: str, source: str, group: str, count: int
) -> dict[str, str]:
    """Produce ``count`` dead letters to ``dlq``; returns a sample of values to search for."""
    kafka = KafkaSettings(bootstrap_servers=ctx.bootstrap_servers)
    admin.apply(admin.plan(topology, kafka), kafka)
    codec = codec_for()
    schema = codec.schema_ref(OrderPlaced).encode()
    producer = Producer(ctx.kafka_conf(linger_ms=20, batch_num_messages=5000, compression_type="lz4"))
    sample: dict[str, str] = {}
    for i in range(count):
        order = OrderPlaced(
            order_id=f"o-{i:07d}",
            customer_id=f"c-{i % 1000:04d}",
            items=[LineItem(sku=f"sku-{i % 37}", quantity=1 + i % 5, unit_price_cents=100 + i % 900)],
            amount_cents=100 + i % 9000,
            currency="EUR",
        )
        exc = EXCEPTIONS[i % len(EXCEPTIONS)]
        failed = T0 + (i * 86_400_000) // count
        original = [(h.EVENT_TYPE, OrderPlaced.avro_name.encode()), (h.SCHEMA, schema)]
        headers = Provenance(
            original_topic=source,
            original_partition=i % PARTITIONS,
            original_offset=i // PARTITIONS,
            original_timestamp_ms=failed - 60_000,
            consumer_group=group,
            attempt=4,
            first_failure_ms=failed - 50_000,
            last_failure_ms=failed,
            exception_type=f"builtins.{exc}",
            exception_message=f"{exc} while handling {order.order_id}",
            exception_traceback=f"Traceback (most recent call last):\n  ...\n{exc}: {order.order_id}",
            idempotency_key=order.event_id,
        ).to_headers(original)
        while True:
            try:
                producer.produce(
                    dlq,
                    codec.encode(order),
                    order.order_id.encode(),
                    partition=i % PARTITIONS,
                    headers=headers,
                )
                break
            except BufferError:
                producer.poll(0.05)
        if i == count // 2:
            sample = {"key": order.order_id, "event_id": order.event_id, "customer": order.customer_id}
        if i % 1000 == 0:
            producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("dead letters not all acknowledged within 120 s")
    return sample


def run(ctx: BenchContext) -> list[Result]:
    count = ctx.scale(100_000, 5_000)
    trials = ctx.scale(5, 2)
    suffix = uuid.uuid4().hex[:8]
    source, group = f"bench-console-{suffix}", "billing"
    dlq = f"{source}.{group}.dlq"
    topology = Topology(
        topics=(TopicSpec(name=source, partitions=PARTITIONS, value_schema="kep.orders.OrderPlaced"),),
        groups=(ConsumerGroupSpec(name=group, topics=(source,)),),
    )
    sample = _fill(ctx, topology, dlq, source, group, count)
    kafka = KafkaSettings(bootstrap_servers=ctx.bootstrap_servers)
    with tempfile.TemporaryDirectory(prefix="kep-bench-console-") as tmp:
        database = Path(tmp) / "console.db"
        index = DeadLetterIndex(database, kafka, codec_for(), timeout_s=30)
        started = time.perf_counter()
        state = index.refresh(dlq)
        index_s = time.perf_counter() - started
        indexed = index.counts([dlq])[dlq].total
        index.close()
        if not state.complete or indexed != count:
            raise RuntimeError(f"indexed {indexed} of {count} dead letters: {state.error}")

        settings = ConsoleSettings(port=0, database=database, group_filter="none", poll_interval_s=3600)
        app = create_app(settings, topology, kafka=kafka, start_poller=False)
        server = BackgroundServer(uvicorn_config(app, settings)).start()
        filters = {
            "no filter": {},
            "exception": {"exception": "KeyError"},
            "key": {"key": sample["key"]},
            "event id": {"event_id": sample["event_id"]},
            "time range": {"since": "2026-01-01T06:00", "until": "2026-01-01T07:00"},
            "payload field": {"field": "customer_id", "value": sample["customer"]},
            "payload text": {"text": sample["customer"]},
        }
        timings: dict[str, list[float]] = {name: [] for name in filters}
        totals: dict[str, int] = {}
        try:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                for _ in range(trials):
                    for name, params in filters.items():
                        began = time.perf_counter()
                        page = client.get(f"/dead-letters/{dlq}", params=params)
                        timings[name].append((time.perf_counter() - began) * 1000)
                        if page.status_code != 200:
                            raise RuntimeError(f"search {name}: HTTP {page.status_code}")
                        totals[name] = _total(page.text)
        finally:
            server.stop()
        direct = DeadLetterIndex(database, kafka, None)
        try:
            sql_ms = median(
                [
                    direct.search(dlq, Query(field="customer_id", value=sample["customer"])).took_ms
                    for _ in range(trials)
                ]
            )
        finally:
            direct.close()
    ms = {name: median(values) for name, values in timings.items()}
    slowest = max(ms, key=lambda n: ms[n])
    results = [
        ctx.result(
            f"index {count:,} dead letters (from empty)",
            index_s,
            "s",
            better="lower",
            note=f"{count / index_s:,.0f} dead letters/s read, decoded and stored",
        ),
        ctx.result(
            f"search first page over {count:,}, HTTP (slowest filter: {slowest})",
            ms[slowest],
            "ms",
            target=TARGET_MS,
            better="lower",
            samples=timings[slowest],
        ),
    ]
    for name, value in ms.items():
        results.append(
            ctx.result(
                f"search first page, HTTP ({name})",
                value,
                "ms",
                better="lower",
                samples=timings[name],
                note=f"{totals[name]:,} matches",
            )
        )
    results.append(ctx.result("index query alone (payload field)", sql_ms, "ms", better="lower"))
    return results


def _total(page: str) -> int:
    marker = 'id="total">'
    start = page.index(marker) + len(marker)
    return int(page[start : page.index("<", start)])
