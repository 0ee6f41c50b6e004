"""Delayed events: the delay-tier topics of a topology (its ``delays:`` section) and the choice of a tier.

A delayed record waits in the largest tier not longer than its remaining delay; the delay forwarder holds each
tier's records for exactly the tier's delay (in offset order), then moves them to a smaller tier or, once less
than the smallest tier is left, to their destination at their due time (``docs/delayed-events.md``).

Names: tier ``{prefix}.{delay}`` (``kep.delay.30s``), the forwarder's dead letters ``{prefix}.dlq``.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from kep.topology._types import FrozenModel, KafkaName, PositiveDuration, TopicConfigs
from kep.topology.durations import format_duration

__all__ = ["DEFAULT_DELAY_TIERS", "DelaySpec", "DelayTier"]

DEFAULT_DELAY_TIERS = (1.0, 5.0, 30.0, 120.0, 600.0, 3600.0, 21600.0, 86400.0)
DAY_S = 86_400.0
DEFAULT_DELAY_TOPIC_CONFIGS = {"cleanup.policy": "delete", "retention.ms": str(7 * 86_400_000)}


class DelayTier(FrozenModel):
    """One delay-tier topic: its records wait ``delay_seconds`` there, in offset order."""

    topic: str
    delay_seconds: float
    suffix: str


class DelaySpec(FrozenModel):
    """The ``delays:`` section: tiers, their topics' name prefix and partitions, the forwarder's group.

    ``max_delay`` bounds how far ahead an event may be scheduled: the producer refuses more, and the forwarder
    dead-letters a record whose due time lies further ahead than that (a hostile or corrupt header).
    """

    tiers: tuple[PositiveDuration, ...] = DEFAULT_DELAY_TIERS
    prefix: KafkaName = "kep.delay"
    partitions: int = Field(default=3, ge=1, le=100_000)
    replication_factor: int | None = Field(default=None, ge=1)
    group: KafkaName = "kep-delays"
    max_delay: PositiveDuration = 365 * DAY_S
    topic_configs: TopicConfigs = Field(default_factory=dict)

    @field_validator("tiers")
    @classmethod
    def _sorted_distinct(cls, tiers: tuple[float, ...]) -> tuple[float, ...]:
        if not tiers:
            raise ValueError("at least one tier is needed")
        suffixes = [format_duration(t) for t in tiers]
        if len(set(suffixes)) != len(suffixes):
            raise ValueError(f"tiers repeat a delay: {', '.join(suffixes)}")
        if list(tiers) != sorted(tiers):
            raise ValueError(f"tiers must be listed shortest first: {', '.join(suffixes)}")
        return tiers

    @model_validator(mode="after")
    def _retention_outlasts_the_largest_tier(self) -> DelaySpec:
        retention = int(self.effective_configs()["retention.ms"])
        if 0 <= retention <= self.tiers[-1] * 1000:
            raise ValueError(
                f"topic_configs retention.ms {retention} is not longer than the largest tier "
                f"{format_duration(self.tiers[-1])}: records would expire before they are due"
            )
        return self

    @field_validator("replication_factor", mode="before")
    @classmethod
    def _broker_default(cls, value: object) -> object:
        return None if value == -1 else value

    def tier_list(self) -> list[DelayTier]:
        """The tiers, shortest first."""
        return [
            DelayTier(topic=f"{self.prefix}.{format_duration(d)}", delay_seconds=d, suffix=format_duration(d))
            for d in self.tiers
        ]

    @property
    def dlq_topic(self) -> str:
        """Where the forwarder puts records it cannot forward (bad delay headers, unknown destination)."""
        return f"{self.prefix}.dlq"

    @property
    def smallest_s(self) -> float:
        return self.tiers[0]

    def tier_for(self, remaining_s: float) -> DelayTier:
        """The largest tier not longer than ``remaining_s``; the smallest tier when all are longer."""
        chosen = self.tiers[0]
        for delay in self.tiers:
            if delay <= remaining_s:
                chosen = delay
        suffix = format_duration(chosen)
        return DelayTier(topic=f"{self.prefix}.{suffix}", delay_seconds=chosen, suffix=suffix)

    def effective_configs(self) -> dict[str, str]:
        return {**DEFAULT_DELAY_TOPIC_CONFIGS, **self.topic_configs}
