"""Leadership among scheduler replicas: a consumer group on the one-partition state topic.

Every replica subscribes to the state topic with the topology's ``schedule_state.group``. The member the group
gives partition 0 leads: it reads the topic from its beginning (nothing is ever committed) into a
``StateView`` and, once it reached the end, may publish. It keeps consuming, so it sees ``pause``/``resume``
records as they come. A revoked or lost partition ends leadership at once. The group uses the eager protocol
and ``session.timeout.ms`` 6000 (the broker minimum), so a killed leader's partition moves within seconds.

Only the thread that calls ``poll`` touches this object (the rebalance callbacks run inside ``poll``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from kep.consumers.schedules.state import StateView
from kep.topology.model import ScheduleStateSpec
from kep.topology.settings import KafkaSettings

__all__ = ["Membership"]

log = structlog.get_logger(__name__)

GROUP_SETTINGS: dict[str, Any] = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
    "partition.assignment.strategy": "range",
}


class Membership:
    """This replica's place in the schedulers' group: ``leading`` once it owns partition 0 and read the state
    topic to its end; ``view`` is the state it read."""

    def __init__(
        self,
        kafka: KafkaSettings,
        state: ScheduleStateSpec,
        *,
        on_change: Callable[[bool], None] | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        self.topic = state.topic
        self.group = state.group
        self.view = StateView()
        self.owner = False  # owns partition 0 (may still be reading)
        self.caught_up = False
        self._on_change = on_change or (lambda _leading: None)
        conf = {
            **kafka.as_librdkafka_dict(),
            **GROUP_SETTINGS,
            "group.id": state.group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "allow.auto.create.topics": False,
            "fetch.wait.max.ms": 50,
            **(overrides or {}),
        }
        self._consumer = Consumer(conf)
        self._consumer.subscribe(
            [self.topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._revoked
        )

    @property
    def leading(self) -> bool:
        return self.owner and self.caught_up

    def poll(self, timeout_s: float) -> None:
        """Serve the group and fold new state records in (waits at most ``timeout_s``)."""
        for msg in self._consumer.consume(500, timeout_s):
            error = msg.error()
            if error is None:
                if self.owner:
                    self.view.apply(msg.key(), msg.value())
            elif error.code() == KafkaError._PARTITION_EOF:
                if self.owner and not self.caught_up:
                    self.caught_up = True
                    log.info("schedules: leading", group=self.group, state_topic=self.topic)
                    self._on_change(True)
            else:
                log.warning("schedules: state topic consumer error", error=error.str(), topic=self.topic)

    def close(self) -> None:
        """Leave the group (the next leader takes over at once) and close the consumer."""
        self._lose()
        self._consumer.close()

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if any(p.partition == 0 for p in partitions):
            self.owner, self.caught_up, self.view = True, False, StateView()
            consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
            log.info("schedules: owns the state partition; reading the state", group=self.group)
        else:
            consumer.assign(partitions)

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._lose()

    def _lose(self) -> None:
        was = self.leading
        self.owner, self.caught_up = False, False
        if was:
            log.info("schedules: no longer leading", group=self.group)
            self._on_change(False)
