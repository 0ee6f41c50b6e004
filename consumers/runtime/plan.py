"""What a worker consumes and how: the group, its topics and retry tiers, the librdkafka configuration, and the
producer it forwards failed records with (sized to the retry and dead-letter topics' ``max.message.bytes``).
Resolved once from the app, the settings and the topology."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog
from confluent_kafka import Producer

from kep.consumers.app import App
from kep.consumers.errors import AppError
from kep.consumers.runtime.held import gather_ms, max_wait_ms
from kep.consumers.runtime.settle import DEFAULT_MAX_MESSAGE_BYTES, HEADROOM
from kep.consumers.settings import CLASSIC_ONLY_KEYS, ConsumerSettings
from kep.producers.settings import ProducerSettings
from kep.topology.errors import TopologyError
from kep.topology.loader import load_topology
from kep.topology.model import ConsumerGroupSpec, Topology
from kep.topology.settings import KafkaSettings

log = structlog.get_logger(__name__)


@dataclass
class WorkerPlan:
    group: str
    settings: ConsumerSettings
    kafka: KafkaSettings
    topology: Topology
    group_spec: ConsumerGroupSpec | None
    main_topics: tuple[str, ...]
    tiers: dict[str, tuple[str, str]]  # retry topic -> (source topic, tier suffix)
    producer: Producer | None = field(default=None, repr=False)
    limits: dict[str, int] = field(default_factory=dict)  # retry and dead-letter topic -> max.message.bytes
    # retry topic -> (longest legitimate wait, longest a due record waits for others), ms: ``HeldRetries``
    holds: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def subscriptions(self) -> tuple[str, ...]:
        return (*self.main_topics, *self.tiers)

    def source_of(self, topic: str) -> tuple[str, str | None]:
        """The topic events on ``topic`` were first published to, and the retry tier suffix (None: main topic)."""
        tier = self.tiers.get(topic)
        return (topic, None) if tier is None else tier

    def consumer_config(self) -> dict[str, Any]:
        s = self.settings
        conf = self.kafka.as_librdkafka_dict()
        conf.update(
            {
                "group.id": self.group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": s.auto_offset_reset,
                "max.poll.interval.ms": s.max_poll_interval_ms,
                "fetch.wait.max.ms": s.fetch_wait_max_ms,
                "queued.max.messages.kbytes": s.prefetch_max_kbytes,
                "allow.auto.create.topics": False,
            }
        )
        if s.group_protocol == "consumer":  # librdkafka refuses a consumer with classic-only keys
            dropped = [key for key in CLASSIC_ONLY_KEYS if conf.pop(key, None) is not None]
            if dropped:
                log.warning("classic group protocol keys ignored with group_protocol=consumer", keys=dropped)
        conf.update(s.group_config())
        if s.group_instance_id:
            conf["group.instance.id"] = s.group_instance_id
        return conf

    def close(self, timeout: float = 10.0) -> None:
        if self.producer is not None:
            self.producer.flush(timeout)
            self.producer.close()
            self.producer = None


def group_topics(
    app: App, group: str, topology: Topology
) -> tuple[ConsumerGroupSpec | None, tuple[str, ...]]:
    """The topology's entry for ``group`` (None when it has none) and the topics the group reads: the app's,
    else its entry's."""
    try:
        group_spec: ConsumerGroupSpec | None = topology.group(group)
    except TopologyError:
        group_spec = None
    return group_spec, tuple(app.topics or (group_spec.topics if group_spec else ()))


def make_plan(
    app: App, settings: ConsumerSettings, kafka: KafkaSettings, topology: Topology | None = None
) -> WorkerPlan:
    group = settings.group or app.group
    if topology is None:
        topology = load_topology(settings.topology)
    group_spec, main = group_topics(app, group, topology)
    if not main:
        raise AppError(
            f"group {group!r}: no topics; list them in App(topics=...) or in the topology's groups"
        )
    tiers: dict[str, tuple[str, str]] = {}
    holds: dict[str, tuple[int, int]] = {}
    forward_to: list[str] = []
    if group_spec is not None:
        for source in main:
            if source not in group_spec.topics:
                raise AppError(f"group {group!r} reads {source!r}, which its topology entry does not list")
            jitter = group_spec.retry_for(source).jitter
            for tier in group_spec.retry_tiers(source):
                tiers[tier.topic] = (source, tier.suffix)
                holds[tier.topic] = (
                    max_wait_ms(tier.delay_seconds, jitter),
                    gather_ms(tier.delay_seconds, settings.retry_batch_wait_s),
                )
                forward_to.append(tier.topic)
            dlq = group_spec.dlq_topic(source)
            if dlq is not None:
                forward_to.append(dlq)
    app.check(main)
    producer, limits = None, {}
    if forward_to:
        limits = topic_limits(kafka, forward_to)
        producer = forwarding_producer(kafka, limits.values())
    plan = WorkerPlan(group, settings, kafka, topology, group_spec, main, tiers, producer, limits)
    plan.holds = holds
    return plan


def topic_limits(kafka: KafkaSettings, topics: list[str], timeout: float = 10.0) -> dict[str, int]:
    """Each topic's ``max.message.bytes`` as the cluster reports it; librdkafka's default where it reports none
    (or cannot be asked: the forwarding then finds out from the broker's answer)."""
    from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

    limits = dict.fromkeys(topics, DEFAULT_MAX_MESSAGE_BYTES)
    client = AdminClient(kafka.as_librdkafka_dict())
    try:
        futures = client.describe_configs(
            [ConfigResource("topic", topic) for topic in topics], request_timeout=timeout
        )
        for resource, future in futures.items():
            entry = future.result(timeout).get("max.message.bytes")
            if entry is not None and entry.value and entry.value.isdigit():
                limits[resource.name] = int(entry.value)
    except Exception as exc:  # noqa: BLE001 - not fatal: the broker's refusals are handled per record
        log.warning("cannot read the retry and dead-letter topics' max.message.bytes", error=str(exc))
    return limits


def forwarding_producer(kafka: KafkaSettings, limits: Iterable[int]) -> Producer:
    """An idempotent producer whose largest record is the largest destination's limit and whose batches fit
    the smallest (a record alone is sent in a batch of its own)."""
    values = list(limits) or [DEFAULT_MAX_MESSAGE_BYTES]
    largest, smallest = max(values), min(values)
    conf = {**kafka.as_librdkafka_dict(), **ProducerSettings().as_librdkafka_dict()}
    conf["message.max.bytes"] = min(max(largest, DEFAULT_MAX_MESSAGE_BYTES), 1_000_000_000)
    conf["batch.size"] = max(1, min(int(conf.get("batch.size", smallest)), smallest - HEADROOM))
    return Producer(conf)
