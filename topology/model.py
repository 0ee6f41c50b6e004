"""The topology: declared topics, consumer groups and their retry policies, and the topics derived from them.

Everything is a frozen pydantic model; unknown keys are refused. Derived names, per group and source topic:

* retry tier ``i``: ``{topic}.{group}.retry.{delay}``, e.g. ``orders.billing.retry.10s`` (``mode: topics``)
* dead letters: ``{topic}.{group}.dlq`` (when ``dead_letter`` is true)

``RetrySpec`` and ``RetryTier`` live in ``_retry.py`` and are re-exported here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from kep.topology._delays import DelaySpec
from kep.topology._limits import LimitSpec, limit_problems
from kep.topology._retry import RetrySpec, RetryTier
from kep.topology._schedules import ScheduleSpec, ScheduleStateSpec
from kep.topology._types import AvroName, FieldName, FrozenModel, KafkaName, TopicConfigs, kafka_name_problem
from kep.topology.durations import format_duration
from kep.topology.errors import Issue, TopologyError, ValidationProblems, format_loc

__all__ = [
    "ConsumerGroupSpec",
    "DerivedTopic",
    "RetrySpec",
    "RetryTier",
    "ScheduleSpec",
    "ScheduleStateSpec",
    "TopicSpec",
    "Topology",
]


class TopicSpec(FrozenModel):
    """A topic as it must exist on the cluster. ``value_schema``: one Avro full name or a list of them."""

    name: KafkaName
    partitions: int = Field(ge=1, le=100_000)  # librdkafka refuses more
    replication_factor: int | None = Field(default=None, ge=1)
    """Copies of each partition; ``None`` (or ``-1`` in YAML): the broker's ``default.replication.factor``."""
    configs: TopicConfigs = Field(default_factory=dict)
    value_schema: tuple[AvroName, ...] = ()
    key_field: FieldName | None = None

    @field_validator("replication_factor", mode="before")
    @classmethod
    def _broker_default(cls, value: object) -> object:
        return None if value == -1 else value

    @field_validator("value_schema", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    def carries(self, avro_name: str) -> bool:
        """True when events named ``avro_name`` belong on this topic."""
        return avro_name in self.value_schema


class ConsumerGroupSpec(FrozenModel):
    """A consumer group, the topics it reads and how it retries (``topic_retry``: per-topic overrides)."""

    name: KafkaName
    topics: tuple[KafkaName, ...] = Field(min_length=1)
    retry: RetrySpec = Field(default_factory=RetrySpec)
    topic_retry: dict[KafkaName, RetrySpec] = Field(default_factory=dict)
    # rate and concurrency limits by topic or event type (topology/_limits.py, docs/limits.md)
    limits: dict[str, LimitSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _overrides_name_own_topics(self) -> ConsumerGroupSpec:
        problems: list[Issue] = []
        seen: dict[str, int] = {}
        for index, topic in enumerate(self.topics):
            if topic in seen:
                problems.append(
                    Issue(("topics", index), f"topic {topic!r} is listed twice (also topics[{seen[topic]}])")
                )
            seen.setdefault(topic, index)
        for topic in self.topic_retry:
            if topic not in seen:
                problems.append(
                    Issue(
                        ("topic_retry", topic),
                        f"group {self.name!r} does not read topic {topic!r}; "
                        f"its topics are {', '.join(self.topics)}",
                    )
                )
        if problems:
            raise ValidationProblems(problems)
        return self

    def _require(self, source: str) -> None:
        if source not in self.topics:
            raise TopologyError(
                f"group {self.name!r} does not read topic {source!r}; its topics are {', '.join(self.topics)}"
            )

    def retry_for(self, source: str) -> RetrySpec:
        """The retry policy for records from ``source``: its ``topic_retry`` entry, else ``retry``."""
        self._require(source)
        return self.topic_retry.get(source, self.retry)

    def retry_tiers(self, source: str) -> list[RetryTier]:
        """The retry topics for ``source`` in this group, tier 1 first; none in blocking mode."""
        spec = self.retry_for(source)
        if spec.mode == "blocking":
            return []
        tiers = []
        for index, delay in enumerate(spec.delays, start=1):
            suffix = format_duration(delay)
            tiers.append(
                RetryTier(
                    topic=f"{source}.{self.name}.retry.{suffix}",
                    source=source,
                    group=self.name,
                    index=index,
                    delay_seconds=delay,
                    suffix=suffix,
                )
            )
        return tiers

    def retry_tier_for(self, source: str, retry: int) -> RetryTier | None:
        """The tier that carries retry number ``retry`` (1 = first retry) of a ``source`` record, or None
        when the retries are used up or the policy retries in place (blocking)."""
        index = self.retry_for(source).tier_index(retry)
        tiers = self.retry_tiers(source)
        if index is None or not tiers:
            return None
        return tiers[index - 1]

    def dlq_topic(self, source: str) -> str | None:
        """The dead-letter topic for ``source`` in this group, or None when ``dead_letter`` is false."""
        return f"{source}.{self.name}.dlq" if self.retry_for(source).dead_letter else None


DAY_MS = 86_400_000
DEFAULT_RETRY_TOPIC_CONFIGS = {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)}
DEFAULT_DEAD_LETTER_TOPIC_CONFIGS = {"cleanup.policy": "delete", "retention.ms": str(28 * DAY_MS)}
# Keys a retry or dead-letter topic copies from its source, so a record that fits the source fits there too.
INHERITED_CONFIGS = ("max.message.bytes", "min.insync.replicas")


class DerivedTopic(FrozenModel):
    """A retry or dead-letter topic computed from a group's policy, or a delay topic (``kind="delay"``: a tier or
    the delay forwarder's dead letters, ``group`` the forwarder's group), with the spec it must have."""

    kind: Literal["retry", "dlq", "delay"]
    spec: TopicSpec
    source: str
    group: str
    tier: RetryTier | None = None


class Topology(FrozenModel):
    """Declared topics, the consumer groups reading them, and configs for the derived topics.

    ``schemas``: where the ``.avsc`` files of the topics' events are, directories or files (one path or a
    list); ``load_topology`` resolves relative paths against the topology file's directory.
    ``retry_topic_configs`` and ``dead_letter_topic_configs`` are laid over the defaults
    (``cleanup.policy=delete``; retention 7 days for retry topics, 28 days for dead letters).
    """

    schemas: tuple[str, ...] = ()
    topics: tuple[TopicSpec, ...] = ()
    groups: tuple[ConsumerGroupSpec, ...] = ()
    retry_topic_configs: TopicConfigs = Field(default_factory=dict)
    dead_letter_topic_configs: TopicConfigs = Field(default_factory=dict)
    delays: DelaySpec | None = None
    """Delayed events (``docs/delayed-events.md``): the delay-tier topics, absent when the service has none."""
    schedules: tuple[ScheduleSpec, ...] = ()
    schedule_state: ScheduleStateSpec = Field(default_factory=ScheduleStateSpec)

    @field_validator("schemas", mode="before")
    @classmethod
    def _one_path_or_many(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @field_validator("schemas")
    @classmethod
    def _no_empty_path(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not path.strip() for path in value):
            raise ValueError("a schema path must not be empty")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Topology:
        problems = _duplicate_names("topics", [t.name for t in self.topics], "topic")
        problems += _duplicate_names("groups", [g.name for g in self.groups], "group")
        problems += self._unknown_topics()
        problems += limit_problems(self.topics, self.groups)
        if not problems:
            problems += _derived_name_problems(self)
        if not problems:
            problems += self._retention_problems()
        problems += _schedule_problems(self)
        if problems:
            raise ValidationProblems(problems)
        return self

    def _unknown_topics(self) -> list[Issue]:
        declared = {t.name for t in self.topics}
        listing = ", ".join(sorted(declared)) or "none"
        return [
            Issue(("groups", g, "topics", i), f"unknown topic {name!r} (declared topics: {listing})")
            for g, group in enumerate(self.groups)
            for i, name in enumerate(group.topics)
            if name not in declared
        ]

    def _retention_problems(self) -> list[Issue]:
        retention = int(self.effective_retry_configs()["retention.ms"])
        longest = max(
            (d.tier.delay_seconds for d in self.derived_topics() if d.tier is not None), default=0.0
        )
        if retention < 0 or retention > longest * 1000:
            return []
        return [
            Issue(
                ("retry_topic_configs", "retention.ms"),
                f"{retention} ms is not longer than the longest retry delay {format_duration(longest)}: "
                "records would expire before they are due",
            )
        ]

    def topic(self, name: str) -> TopicSpec:
        """The declared topic ``name``; ``TopologyError`` names it when there is none."""
        for spec in self.topics:
            if spec.name == name:
                return spec
        raise TopologyError(
            f"unknown topic {name!r} (declared topics: {', '.join(t.name for t in self.topics)})"
        )

    def group(self, name: str) -> ConsumerGroupSpec:
        """The consumer group ``name``; ``TopologyError`` names it when there is none."""
        for spec in self.groups:
            if spec.name == name:
                return spec
        raise TopologyError(
            f"unknown group {name!r} (declared groups: {', '.join(g.name for g in self.groups)})"
        )

    def topics_for_event(self, avro_name: str) -> list[TopicSpec]:
        """Declared topics whose ``value_schema`` lists ``avro_name``, in declaration order."""
        return [spec for spec in self.topics if spec.carries(avro_name)]

    def effective_retry_configs(self) -> dict[str, str]:
        return {**DEFAULT_RETRY_TOPIC_CONFIGS, **self.retry_topic_configs}

    def effective_dead_letter_configs(self) -> dict[str, str]:
        return {**DEFAULT_DEAD_LETTER_TOPIC_CONFIGS, **self.dead_letter_topic_configs}

    def derived_topics(self) -> list[DerivedTopic]:
        """Every retry and dead-letter topic, per group and source topic: tiers in order, then dead letters.

        Each has its source's partition count, replication factor, value schema and key field.
        """
        declared = {t.name: t for t in self.topics}
        derived: list[DerivedTopic] = []
        for group in self.groups:
            for source_name in group.topics:
                source = declared.get(source_name)
                if source is None:
                    continue
                for tier in group.retry_tiers(source_name):
                    spec = _derived_spec(source, tier.topic, self.effective_retry_configs())
                    derived.append(
                        DerivedTopic(kind="retry", spec=spec, source=source_name, group=group.name, tier=tier)
                    )
                dlq = group.dlq_topic(source_name)
                if dlq is not None:
                    spec = _derived_spec(source, dlq, self.effective_dead_letter_configs())
                    derived.append(DerivedTopic(kind="dlq", spec=spec, source=source_name, group=group.name))
        return derived + _delay_topics(self.delays, self.topics)

    def all_topic_specs(self) -> list[TopicSpec]:
        """The declared topics followed by every derived retry and dead-letter topic (and, with ``schedules``,
        the schedulers' state topic)."""
        return [*self.topics, *(d.spec for d in self.derived_topics()), *self.schedule_state_topics()]

    def schedule(self, name: str) -> ScheduleSpec:
        """The schedule ``name``; ``TopologyError`` names it when there is none."""
        for spec in self.schedules:
            if spec.name == name:
                return spec
        known = ", ".join(s.name for s in self.schedules) or "none"
        raise TopologyError(f"unknown schedule {name!r} (declared schedules: {known})")

    def schedule_state_topics(self) -> list[TopicSpec]:
        """The schedulers' compacted one-partition state topic when there are schedules, else nothing."""
        if not self.schedules:
            return []
        state = self.schedule_state
        configs = state.topic_configs()
        return [
            TopicSpec(
                name=state.topic, partitions=1, replication_factor=state.replication_factor, configs=configs
            )
        ]


def _derived_spec(source: TopicSpec, name: str, configs: dict[str, str]) -> TopicSpec:
    inherited = {key: source.configs[key] for key in INHERITED_CONFIGS if key in source.configs}
    return TopicSpec(
        name=name,
        partitions=source.partitions,
        replication_factor=source.replication_factor,
        configs={**inherited, **configs},
        value_schema=source.value_schema,
        key_field=source.key_field,
    )


def _delay_topics(delays: DelaySpec | None, topics: tuple[TopicSpec, ...] = ()) -> list[DerivedTopic]:
    """The delay tiers and the forwarder's dead letters; they take the largest ``max.message.bytes`` a topic
    declares (any topic's records may wait there), unless ``delays.topic_configs`` sets it."""
    if delays is None:
        return []
    names = [tier.topic for tier in delays.tier_list()] + [delays.dlq_topic]
    limits = [int(t.configs["max.message.bytes"]) for t in topics if "max.message.bytes" in t.configs]
    inherited = {"max.message.bytes": str(max(limits))} if limits else {}
    return [
        DerivedTopic(
            kind="delay",
            spec=TopicSpec(
                name=name,
                partitions=delays.partitions,
                replication_factor=delays.replication_factor,
                configs={**inherited, **delays.effective_configs()},
            ),
            source="",
            group=delays.group,
        )
        for name in names
    ]


def _duplicate_names(section: str, names: list[str], what: str) -> list[Issue]:
    first: dict[str, int] = {}
    issues = []
    for index, name in enumerate(names):
        if name in first:
            reason = f"duplicate {what} {name!r} (also {section}[{first[name]}])"
            issues.append(Issue((section, index, "name"), reason))
        first.setdefault(name, index)
    return issues


def _derived_name_problems(topology: Topology) -> list[Issue]:
    """Derived names must be legal, and no two topics may share a name, even with '.' and '_' swapped
    (Kafka refuses such pairs: they collide in metric names)."""
    candidates: list[tuple[str, tuple[str | int, ...]]] = [
        (t.name, ("topics", i)) for i, t in enumerate(topology.topics)
    ]
    for number, group in enumerate(topology.groups):
        for source in group.topics:
            derived = [tier.topic for tier in group.retry_tiers(source)] + [group.dlq_topic(source)]
            candidates += [(name, ("groups", number)) for name in derived if name is not None]
    candidates += [(d.spec.name, ("delays",)) for d in _delay_topics(topology.delays)]
    candidates += [(t.name, ("schedule_state", "topic")) for t in topology.schedule_state_topics()]
    seen: dict[str, tuple[str, str]] = {}
    issues: list[Issue] = []
    for name, owner in candidates:
        problem = kafka_name_problem(name)
        if problem is not None:
            issues.append(Issue((*owner, "name"), f"derived topic name {problem}"))
            continue
        key = name.replace(".", "_")
        if key in seen:
            other_name, other_owner = seen[key]
            if other_name == name:
                reason = f"topic {name!r} is also {other_owner}"
            else:
                reason = f"topic {name!r} collides with {other_name!r} of {other_owner} (same up to '.'/'_')"
            issues.append(Issue(owner, reason))
        seen.setdefault(key, (name, format_loc(owner)))
    return issues


def _schedule_problems(topology: Topology) -> list[Issue]:
    """Schedule names are unique; each publishes to a declared topic carrying its event. (That the state topic is
    no other topic is checked with every derived name, in ``_derived_name_problems``.)"""
    if not topology.schedules:
        return []
    problems = _duplicate_names("schedules", [s.name for s in topology.schedules], "schedule")
    declared = {t.name: t for t in topology.topics}
    for index, spec in enumerate(topology.schedules):
        topic = declared.get(spec.topic)
        if topic is None:
            listing = ", ".join(sorted(declared)) or "none"
            reason = f"schedule {spec.name!r}: unknown topic {spec.topic!r} (declared topics: {listing})"
            problems.append(Issue(("schedules", index, "topic"), reason))
        elif not topic.carries(spec.event):
            carried = ", ".join(topic.value_schema) or "no value_schema"
            reason = f"schedule {spec.name!r}: topic {spec.topic!r} does not carry {spec.event} (it carries {carried})"
            problems.append(Issue(("schedules", index, "event"), reason))
    return problems
