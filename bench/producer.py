"""Producer throughput: ``EventProducer.publish`` against a raw confluent-kafka loop doing its own encoding.

Variants, interleaved round by round on the same broker, each on a fresh topic per trial and timed up to the
last acknowledgement (``flush``):

* ``publish``: ``EventProducer.publish(event, on_delivery=callback)``, the documented fast path;
* ``publish (future)``: ``EventProducer.publish(event)`` returning a ``Future``, for comparison;
* ``raw avro``: a plain ``Producer`` with the same settings, encoding each event's dict with fastavro
  (``schemaless_writer``) and producing it with its key: the baseline, target ``publish >= 0.8 x raw avro``;
* ``raw bytes``: the same plain producer sending ready-made bytes, so the cost of encoding is visible;
* ``raw avro + kep headers``: the baseline plus the three headers ``publish`` sets, so their cost is visible.

Plus the encode cost alone, per event: ``codec.encode(event)`` against ``fastavro.schemaless_writer`` of the
event's dict.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import fastavro
from confluent_kafka import Producer

from bench.context import BenchContext
from bench.result import Result
from bench.stats import Timing, median, median_cpu_micros, median_rate, timed
from kep.producers import DeliveryError, DeliveryReport, EventProducer, ProducerSettings
from kep.schemas.codec import codec_for
from kep.schemas.events import Event
from kep.schemas.registry import LocalSchemaRegistry
from kep.topology import KafkaSettings, TopicSpec, Topology
from shop.orders import OrderPlaced
from shop.samples import sample_events

TARGET_RATIO = 0.8
PARTITIONS = 6


class _Count:
    """A delivery callback for the raw producer that counts outcomes, as a real application would."""

    def __init__(self) -> None:
        self.ok = 0
        self.failed = 0

    def raw(self, err: Any, msg: Any) -> None:
        if err is None:
            self.ok += 1
        else:
            self.failed += 1

    def ours(self, report: DeliveryReport | None, error: DeliveryError | None) -> None:
        if error is None:
            self.ok += 1
        else:
            self.failed += 1


def _avro_dict(event: Event) -> dict[str, Any]:
    """The dict a hand-written producer would give fastavro (made before timing starts)."""
    return event.model_dump(mode="python")


def _raw_encoder(schema: Any) -> Callable[[dict[str, Any]], bytes]:
    writer = fastavro.schemaless_writer

    def encode(record: dict[str, Any]) -> bytes:
        buffer = io.BytesIO()
        writer(buffer, schema, record)
        return buffer.getvalue()

    return encode


class _Setup:
    """Events, the baseline's dicts and schema, and the producers, shared by every trial."""

    def __init__(self, ctx: BenchContext, count: int) -> None:
        self.ctx = ctx
        self.count = count
        self.events = sample_events(count, kind="orders")
        self.dicts = [_avro_dict(e) for e in self.events]
        self.keys = [str(d["order_id"]) for d in self.dicts]
        self.ids = [e.event_id for e in self.events]
        latest = LocalSchemaRegistry.default().latest("kep.orders.OrderPlaced")
        self.schema = latest.parsed
        self.encode_raw = _raw_encoder(self.schema)
        self.encoded = [self.encode_raw(d) for d in self.dicts]
        self.codec = codec_for()
        self.fixed_headers: list[tuple[str, str | bytes | None]] = [
            ("kep-event-type", b"kep.orders.OrderPlaced"),
            ("kep-schema", self.codec.schema_ref(OrderPlaced).encode()),
        ]
        kafka = KafkaSettings(bootstrap_servers=ctx.bootstrap_servers)
        settings = ProducerSettings()
        self.raw_conf = {**kafka.as_librdkafka_dict(), **settings.as_librdkafka_dict()}
        self.kafka = kafka
        self.settings = settings

    def topology(self, topic: str) -> Topology:
        spec = TopicSpec(name=topic, partitions=PARTITIONS, value_schema=("kep.orders.OrderPlaced",))
        return Topology(topics=(spec,))


def _check(count: _Count, expected: int, variant: str) -> None:
    if count.ok != expected or count.failed:
        raise RuntimeError(f"{variant}: {count.ok} acknowledged, {count.failed} failed, expected {expected}")


def _publish_trial(setup: _Setup, futures: bool) -> Timing:
    topic = setup.ctx.topic(PARTITIONS, prefix="bench-publish")
    count = _Count()
    with EventProducer(
        setup.kafka, setup.topology(topic), codec=setup.codec, settings=setup.settings
    ) as producer:
        producer.publish_and_wait(setup.events[0], timeout=30)  # connect and cache the route first
        publish = producer.publish
        events = setup.events
        on_delivery = count.ours

        def body_callback() -> None:
            for event in events:
                publish(event, on_delivery=on_delivery)
            producer.flush(60)

        def body_future() -> None:
            pending = [publish(event) for event in events]
            producer.flush(60)
            count.ok = sum(1 for f in pending if f.done() and f.exception() is None)

        timing = timed(setup.count, body_future if futures else body_callback)
    _check(count, setup.count, "publish")
    return timing


def _raw_trial(setup: _Setup, encode: bool, with_headers: bool = False) -> Timing:
    """The hand-written loop; ``with_headers`` adds the three headers ``publish`` sets, built per record."""
    topic = setup.ctx.topic(PARTITIONS, prefix="bench-raw")
    count = _Count()
    producer = Producer(setup.raw_conf)
    producer.produce(topic, setup.encoded[0], setup.keys[0])
    producer.flush(30)
    produce, poll, encoder = producer.produce, producer.poll, setup.encode_raw
    on_delivery = count.raw

    fixed = setup.fixed_headers

    def body() -> None:
        sent = 0
        for record, key, ready, event_id in zip(
            setup.dicts, setup.keys, setup.encoded, setup.ids, strict=True
        ):
            value = encoder(record) if encode else ready
            headers: list[tuple[str, str | bytes | None]] | None = None
            if with_headers:
                headers = [*fixed, ("kep-idempotency-key", event_id)]
            while True:
                try:
                    produce(topic, value, key, on_delivery=on_delivery, headers=headers)
                    break
                except BufferError:
                    poll(0.05)
            sent += 1
            if sent % 256 == 0:
                poll(0)
        producer.flush(60)

    timing = timed(setup.count, body)
    producer.close()
    _check(count, setup.count, "raw")
    return timing


def _encode_costs(setup: _Setup) -> tuple[float, float]:
    """Median µs per event of ``codec.encode`` and of fastavro on dicts, three interleaved rounds each."""
    encode, raw = setup.codec.encode, setup.encode_raw
    ours: list[float] = []
    base: list[float] = []
    for _ in range(3):
        ours.append(timed(setup.count, lambda: [encode(e) for e in setup.events]).micros_each)
        base.append(timed(setup.count, lambda: [raw(d) for d in setup.dicts]).micros_each)
    return median(ours), median(base)


def _ratios(numerator: list[Timing], denominator: list[Timing]) -> list[float]:
    """Per-round throughput ratios: each pair ran back to back, so drift on the host cancels out."""
    return [n.per_second / d.per_second for n, d in zip(numerator, denominator, strict=True)]


def run(ctx: BenchContext) -> list[Result]:
    count = ctx.scale(30_000, 3_000)
    repeats = ctx.scale(5, 3)
    setup = _Setup(ctx, count)
    trials = ctx.interleaved(
        {
            "publish": lambda: _publish_trial(setup, futures=False),
            "raw avro": lambda: _raw_trial(setup, encode=True),
            "publish (future)": lambda: _publish_trial(setup, futures=True),
            "raw bytes": lambda: _raw_trial(setup, encode=False),
            "raw avro + kep headers": lambda: _raw_trial(setup, encode=True, with_headers=True),
        },
        repeats,
    )
    ratios = _ratios(trials["publish"], trials["raw avro"])
    future_ratios = _ratios(trials["publish (future)"], trials["raw avro"])
    same_headers = _ratios(trials["publish"], trials["raw avro + kep headers"])
    cpu_ratio = median_cpu_micros(trials["raw avro"]) / median_cpu_micros(trials["publish"])
    ours_us, raw_us = _encode_costs(setup)
    note = f"{repeats} x {count:,} OrderPlaced, {PARTITIONS} partitions"
    results = [
        ctx.result(f"{name}", median_rate(ts), "events/s", samples=[t.per_second for t in ts], note=note)
        for name, ts in trials.items()
    ]
    results += [
        ctx.result(
            "publish / raw avro",
            median(ratios),
            "x",
            target=TARGET_RATIO,
            samples=ratios,
            note="throughput, median of per-round ratios",
        ),
        ctx.result("publish (future) / raw avro", median(future_ratios), "x", samples=future_ratios),
        ctx.result(
            "publish / raw avro + kep headers",
            median(same_headers),
            "x",
            samples=same_headers,
            note="against a hand-written loop sending the same headers",
        ),
        ctx.result(
            "publish / raw avro, CPU",
            cpu_ratio,
            "x",
            note="raw CPU per event / ours; client process only, less noisy than wall time",
        ),
        ctx.result("CPU per event: publish", median_cpu_micros(trials["publish"]), "µs"),
        ctx.result("CPU per event: raw avro", median_cpu_micros(trials["raw avro"]), "µs"),
        ctx.result(
            "CPU per event: raw avro + kep headers",
            median_cpu_micros(trials["raw avro + kep headers"]),
            "µs",
            note="what the three kep headers cost a hand-written loop",
        ),
        ctx.result("encode: codec.encode", ours_us, "µs/event"),
        ctx.result("encode: fastavro on a dict", raw_us, "µs/event"),
    ]
    return results
