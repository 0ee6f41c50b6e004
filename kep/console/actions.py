"""What the console does to dead letters: replay a selection, or one edited payload, dry run first.

Every replay goes through ``kep.consumers.dlq.replay``, the code path of ``kep dlq replay``: the same choice of
destination, replay markers, committed progress and "never twice" guarantee. The console only narrows the
selection to the dead letters an operator picked (``SelectionFilter``, exact partition and offset, so what the
dry run showed is what is sent), and, for an edited payload, swaps the value on its way out
(``EditedValueProducer``) after the new payload was validated against its schema and encoded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from kep.consumers.dlq import ReplayFilter, ReplayResult, replay
from kep.consumers.dlq.records import DeadLetterRecord
from kep.producers.delivery import DeliveryReport
from kep.producers.errors import DeliveryError
from kep.producers.headers import SCHEMA
from kep.schemas.codec import EventCodec
from kep.schemas.errors import KepError
from kep.schemas.events import event_type_for
from kep.topology.model import Topology
from kep.topology.settings import KafkaSettings


class ActionError(ValueError):
    """An action that cannot be done as asked (names what is wrong)."""


@dataclass(frozen=True, slots=True)
class SelectionFilter(ReplayFilter):
    """Exactly these dead letters, by (partition, offset)."""

    refs: frozenset[tuple[int, int]] = field(default_factory=frozenset)

    def matches(self, record: DeadLetterRecord) -> bool:
        return (record.partition, record.offset) in self.refs


def parse_refs(values: Iterable[str]) -> list[tuple[int, int]]:
    """``["0:12", "3:7"]`` -> ``[(0, 12), (3, 7)]``; ``ActionError`` names a malformed one."""
    refs = []
    for value in values:
        partition, _, offset = value.partition(":")
        if not (partition.isdigit() and offset.isdigit()):
            raise ActionError(f"dead letter {value!r}: expected partition:offset, e.g. 0:12")
        refs.append((int(partition), int(offset)))
    return sorted(set(refs))


def result_dict(result: ReplayResult) -> dict[str, Any]:
    """A replay's answer as stored in the audit log and shown on the action's page."""
    return {
        "dry_run": result.dry_run,
        "scanned": result.scanned,
        "already_replayed": result.already_replayed,
        "selected": result.selected,
        "replayed": result.replayed,
        "failed": result.failed,
        "by_target": dict(sorted(result.by_target.items())),
        "reasons": list(result.reasons),
    }


def dry_run(
    kafka: KafkaSettings,
    topology: Topology,
    topic: str,
    refs: Iterable[tuple[int, int]],
    *,
    timeout_s: float,
) -> ReplayResult:
    """What replaying ``refs`` of ``topic`` would send where (back to the group that dead-lettered them, as
    the topology says); sends nothing, commits nothing."""
    selection = SelectionFilter(refs=frozenset(refs))
    return replay(kafka, topic, topology=topology, filters=selection, dry_run=True, idle_timeout=timeout_s)


def run_replay(
    kafka: KafkaSettings,
    topology: Topology,
    topic: str,
    refs: Iterable[tuple[int, int]],
    *,
    timeout_s: float,
    new_value: bytes | None = None,
    new_schema: str | None = None,
) -> ReplayResult:
    """Replay ``refs`` of ``topic``; with ``new_value`` (one dead letter only), send that value instead."""
    selection = SelectionFilter(refs=frozenset(refs))
    if new_value is None:
        return replay(
            kafka,
            topic,
            topology=topology,
            filters=selection,
            idle_timeout=timeout_s,
            flush_timeout=timeout_s,
        )
    if len(selection.refs) != 1:
        raise ActionError("an edited payload replaces exactly one dead letter")
    from kep.producers.producer import EventProducer

    inner = EventProducer(kafka, Topology())
    try:
        producer = EditedValueProducer(inner, new_value, new_schema)
        return replay(
            kafka,
            topic,
            topology=topology,
            filters=selection,
            producer=producer,
            idle_timeout=timeout_s,
            flush_timeout=timeout_s,
        )
    finally:
        inner.close(timeout_s)


class EditedValueProducer:
    """An ``EventProducer`` that sends ``value`` (and its schema header) in place of the replayed record's.

    Replay decides where the record goes and which headers it keeps; only the payload changes.
    """

    def __init__(self, inner: Any, value: bytes, schema_ref: str | None) -> None:
        self._inner, self._value, self._schema = inner, value, schema_ref

    def produce_raw(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Any = None,
        *,
        on_delivery: Callable[[DeliveryReport | None, DeliveryError | None], None] | None = None,
    ) -> Future[DeliveryReport] | None:
        pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or ())
        if self._schema is not None:
            pairs = [(n, self._schema.encode() if n == SCHEMA else v) for n, v in pairs]
        result: Future[DeliveryReport] | None = self._inner.produce_raw(
            topic, key, self._value, pairs, on_delivery=on_delivery
        )
        return result

    def poll(self, timeout: float = 0.0) -> int:
        return int(self._inner.poll(timeout))

    def flush(self, timeout: float = 30.0) -> int:
        return int(self._inner.flush(timeout))


@dataclass(frozen=True, slots=True)
class EditedPayload:
    """A payload an operator edited, validated against its event type's schema and encoded."""

    event_type: str
    value: bytes
    schema_ref: str
    normalized: str  # the event as JSON, as it will be sent


def validate_payload(text: str, event_type: str | None, codec: EventCodec | None) -> EditedPayload:
    """Parse ``text`` as the JSON of an ``event_type`` event, validate it and encode it.

    ``ActionError`` says what is wrong (the JSON position, or each invalid field) before anything is sent.
    """
    if codec is None:
        raise ActionError("no codec: the console cannot encode events")
    if not event_type:
        raise ActionError("the dead letter's event type is unknown, so its payload cannot be validated")
    try:
        model = event_type_for(event_type)
    except KepError as exc:
        raise ActionError(str(exc)) from None
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ActionError(f"payload is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ActionError(f"payload must be a JSON object with the fields of {event_type}")
    try:
        event = model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(payload)'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise ActionError(f"payload does not match {event_type}: {problems}") from None
    try:
        value = codec.encode(event)
    except KepError as exc:
        raise ActionError(f"payload cannot be encoded as {event_type}: {exc}") from None
    normalized = orjson.dumps(event.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode()
    return EditedPayload(event_type, value, codec.schema_ref(model), normalized)
