"""What a worker consumes and how: the group, its topics and retry tiers, the librdkafka configuration, and the
producer it forwards failed records with. Resolved once from the app, the settings and the topology."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog

from kep.consumers.app import App
from kep.consumers.errors import AppError
from kep.consumers.settings import CLASSIC_ONLY_KEYS, ConsumerSettings
from kep.producers.producer import EventProducer
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
    producer: EventProducer | None = field(default=None, repr=False)

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

    def poll_producer(self) -> None:
        if self.producer is not None:
            self.producer.poll(0)

    def flush_producer(self, timeout: float) -> None:
        if self.producer is not None:
            self.producer.flush(timeout)

    def close(self) -> None:
        if self.producer is not None:
            self.producer.close()
            self.producer = None


def make_plan(
    app: App, settings: ConsumerSettings, kafka: KafkaSettings, topology: Topology | None = None
) -> WorkerPlan:
    group = settings.group or app.group
    if topology is None:
        topology = load_topology(settings.topology)
    try:
        group_spec: ConsumerGroupSpec | None = topology.group(group)
    except TopologyError:
        group_spec = None
    main = app.topics or (group_spec.topics if group_spec else ())
    if not main:
        raise AppError(
            f"group {group!r}: no topics; list them in App(topics=...) or in the topology's groups"
        )
    tiers: dict[str, tuple[str, str]] = {}
    routes = False
    if group_spec is not None:
        for source in main:
            if source not in group_spec.topics:
                raise AppError(f"group {group!r} reads {source!r}, which its topology entry does not list")
            for tier in group_spec.retry_tiers(source):
                tiers[tier.topic] = (source, tier.suffix)
            routes = (
                routes or bool(group_spec.retry_tiers(source)) or group_spec.dlq_topic(source) is not None
            )
    app.check(main)
    producer = EventProducer(kafka, topology) if routes else None
    return WorkerPlan(group, settings, kafka, topology, group_spec, tuple(main), tiers, producer)
