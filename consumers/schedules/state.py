"""The schedulers' state, kept in the compacted one-partition state topic: one record per key, the newest wins.

Two kinds of key, each with one kind of writer, so a pause never races a firing's record:

* ``fired/<schedule>`` (the leader): ``{"at_ms": ..., "event_id": ...}``, the last firing whose event the broker
  acknowledged, every earlier one acknowledged too. A baseline (``"baseline": true``, no event) is written
  when a schedule is first seen, so a catch-up starts there even if that leader dies at once.
* ``paused/<schedule>`` (``kep schedules pause`` / ``resume``): ``{"paused": true|false, "at_ms": ...}``.

Values are JSON. ``read_state`` reads the whole topic with a plain assigned consumer (no group), for
``kep schedules ls``; the leader folds the same records into its ``ScheduleState`` as it consumes them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from kep.topology.settings import KafkaSettings

__all__ = ["ScheduleState", "StateView", "fired_record", "paused_record", "read_state", "require_state_topic"]

log = structlog.get_logger(__name__)

FIRED = "fired/"
PAUSED = "paused/"


@dataclass(frozen=True)
class ScheduleState:
    """What the state topic says of one schedule. Times in ms since the epoch, UTC."""

    last_fired_ms: int | None = None
    last_event_id: str | None = None
    baseline: bool = False
    paused: bool = False
    paused_changed_ms: int | None = None

    def resumed_ms(self) -> int | None:
        """When the schedule was last resumed (firings before it are never fired), or None."""
        return None if self.paused else self.paused_changed_ms


@dataclass
class StateView:
    """Every schedule's state, built from the state topic's records in order."""

    schedules: dict[str, ScheduleState] = field(default_factory=dict)

    def get(self, name: str) -> ScheduleState:
        return self.schedules.get(name, ScheduleState())

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Fold one record in; a record that is not kep's (foreign key, not JSON) is logged and ignored."""
        if key is None or value is None:
            return
        try:
            text = key.decode()
            data = json.loads(value)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            self._apply(text, data)
        except (UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
            log.warning("schedule state: record ignored", key=repr(key[:100]), reason=str(exc))

    def _apply(self, key: str, data: dict[str, Any]) -> None:
        if key.startswith(FIRED):
            name = key.removeprefix(FIRED)
            at = int(data["at_ms"])
            current = self.get(name)
            if (
                current.last_fired_ms is None or at >= current.last_fired_ms
            ):  # a late zombie's record is older
                baseline = data.get("baseline") is True
                event_id = data.get("event_id")
                self.schedules[name] = replace(
                    current,
                    last_fired_ms=at,
                    last_event_id=event_id if isinstance(event_id, str) else None,
                    baseline=baseline,
                )
        elif key.startswith(PAUSED):
            name = key.removeprefix(PAUSED)
            paused = data["paused"]
            if not isinstance(paused, bool):
                raise ValueError("'paused' is not true or false")
            self.schedules[name] = replace(
                self.get(name), paused=paused, paused_changed_ms=int(data["at_ms"])
            )
        else:
            raise ValueError("unknown key")


def fired_record(name: str, at_ms: int, event_id: str | None) -> tuple[bytes, bytes]:
    """(key, value) of the record saying ``name`` fired at ``at_ms`` (``event_id`` None: a baseline)."""
    value: dict[str, Any] = {"at_ms": at_ms, "event_id": event_id}
    if event_id is None:
        value["baseline"] = True
    return f"{FIRED}{name}".encode(), json.dumps(value).encode()


def paused_record(name: str, paused: bool, at_ms: int | None = None) -> tuple[bytes, bytes]:
    """(key, value) of the record pausing or resuming ``name``."""
    at = at_ms if at_ms is not None else int(time.time() * 1000)
    return f"{PAUSED}{name}".encode(), json.dumps({"paused": paused, "at_ms": at}).encode()


def read_state(kafka: KafkaSettings, topic: str, *, timeout_s: float = 15.0) -> StateView:
    """The whole state topic, read to its end with an assigned consumer that joins no group.

    ``TimeoutError`` when the end is not reached within ``timeout_s``.
    """
    conf = {
        **kafka.as_librdkafka_dict(),
        "group.id": "kep-schedules-reader",  # required by librdkafka; never joined, never committed
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "allow.auto.create.topics": False,
        "fetch.wait.max.ms": 50,
    }
    consumer = Consumer(conf)
    view = StateView()
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.2):
                error = msg.error()
                if error is None:
                    view.apply(msg.key(), msg.value())
                elif error.code() == KafkaError._PARTITION_EOF:
                    return view
                elif error.fatal() or error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise TimeoutError(f"state topic {topic!r}: {error.str()}")
        raise TimeoutError(f"state topic {topic!r}: its end was not reached within {timeout_s:.0f}s")
    finally:
        consumer.close()


def require_state_topic(kafka: KafkaSettings, topic: str, *, timeout_s: float = 10.0) -> None:
    """Raise ``LookupError`` naming ``topic`` when the cluster does not have it (``kep topology apply`` creates
    it from a topology with ``schedules:``)."""
    from confluent_kafka import KafkaException, TopicCollection
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(kafka.as_librdkafka_dict())
    future = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout_s)[topic]
    try:
        future.result(timeout_s)  # never creates the topic, unlike a metadata request naming it
    except KafkaException as exc:
        raise LookupError(
            f"the schedules' state topic {topic!r} does not exist: run 'kep topology apply' (a topology with "
            f"schedules: declares it, compacted, one partition) ({exc.args[0].name() if exc.args else exc})"
        ) from None
