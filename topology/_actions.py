"""What a plan holds: the actions that bring the cluster to the topology, the refusals, and the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from kep.topology.model import TopicSpec

__all__ = [
    "KEY_REMAPPING",
    "Action",
    "AlterConfigs",
    "ApplyResult",
    "ConfigChange",
    "CreateTopic",
    "IncreasePartitions",
    "Plan",
    "Refusal",
]


@dataclass(frozen=True)
class CreateTopic:
    """A topic of the topology that the cluster does not have."""

    spec: TopicSpec

    @property
    def topic(self) -> str:
        return self.spec.name

    def describe(self) -> str:
        configs = ", ".join(f"{k}={v}" for k, v in sorted(self.spec.configs.items()))
        extra = f"; {configs}" if configs else ""
        rf = self.spec.replication_factor
        replication = "the broker's default" if rf is None else str(rf)
        return f"create {self.topic} ({self.spec.partitions} partitions, replication factor {replication}{extra})"


@dataclass(frozen=True)
class IncreasePartitions:
    """A topic with fewer partitions than the topology asks for."""

    topic: str
    current: int
    desired: int

    def describe(self) -> str:
        return f"grow {self.topic} from {self.current} to {self.desired} partitions ({KEY_REMAPPING})"


KEY_REMAPPING = (
    "keys move to other partitions: records of a key written before and after the change are not in order "
    "with each other"
)
"""The warning that goes with every partition growth: the default partitioner maps a key to
``murmur2(key) % partitions``, so a key's partition changes with the count."""


@dataclass(frozen=True)
class ConfigChange:
    """One topic config to set; ``current`` is None when the cluster reports no value."""

    key: str
    current: str | None
    desired: str

    def describe(self) -> str:
        before = "(unset)" if self.current is None else self.current
        return f"{self.key}: {before} -> {self.desired}"


@dataclass(frozen=True)
class AlterConfigs:
    """Topic configs whose values differ from the topology (only those keys are set, others left alone)."""

    topic: str
    changes: tuple[ConfigChange, ...]

    def describe(self) -> str:
        return f"alter {self.topic}: " + ", ".join(change.describe() for change in self.changes)


Action = CreateTopic | IncreasePartitions | AlterConfigs


@dataclass(frozen=True)
class Refusal:
    """A difference kep will not reconcile: fewer partitions than the cluster has, or a replication factor."""

    topic: str
    kind: Literal["shrink_partitions", "replication_factor"]
    current: int
    desired: int

    def describe(self) -> str:
        if self.kind == "shrink_partitions":
            return (
                f"topic {self.topic} has {self.current} partitions and the topology asks for {self.desired}: "
                "Kafka cannot remove partitions (create a new topic and migrate, or keep the count)"
            )
        return (
            f"topic {self.topic} has replication factor {self.current} and the topology asks for "
            f"{self.desired}: changing it is not supported by kep (reassign partitions with "
            "kafka-reassign-partitions)"
        )


@dataclass(frozen=True)
class Plan:
    """The actions that make the cluster match a topology, in the order ``apply`` runs them."""

    actions: tuple[Action, ...] = ()
    refusals: tuple[Refusal, ...] = ()
    unchanged: tuple[str, ...] = ()

    @property
    def has_changes(self) -> bool:
        return bool(self.actions)

    @property
    def is_empty(self) -> bool:
        """Nothing to do and nothing refused: the cluster matches the topology."""
        return not self.actions and not self.refusals

    def describe(self) -> list[str]:
        return [action.describe() for action in self.actions] + [r.describe() for r in self.refusals]


@dataclass(frozen=True)
class ApplyResult:
    """What ``apply`` did. ``already_existed``: topics someone else created between plan and apply."""

    done: tuple[Action, ...] = ()
    already_existed: tuple[str, ...] = field(default=())

    @property
    def changed(self) -> bool:
        return bool(self.done)

    @property
    def created(self) -> tuple[str, ...]:
        return tuple(a.topic for a in self.done if isinstance(a, CreateTopic))

    @property
    def grown(self) -> tuple[str, ...]:
        return tuple(a.topic for a in self.done if isinstance(a, IncreasePartitions))

    @property
    def altered(self) -> tuple[str, ...]:
        return tuple(a.topic for a in self.done if isinstance(a, AlterConfigs))
