"""Each schedule's event checked against the service's own schema: the event is known, its ``fields`` make a
valid event, and it has a key (``key``, or the event's or topic's key field) when its topic is keyed.

``schedule_issues`` returns one ``Issue`` per problem, located in the topology (``schedules[0].fields.currency``);
``kep.topology.loader.check_schedules`` turns them into a ``TopologyError`` with the file and line.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import ValidationError

from kep.schemas.errors import SchemaError
from kep.schemas.registry import LocalSchemaRegistry
from kep.topology.errors import Issue
from kep.topology.model import ScheduleSpec, Topology

__all__ = ["schedule_issues"]

_SAMPLE_ID = "00000000-0000-5000-8000-000000000000"


def schedule_issues(topology: Topology, registry: LocalSchemaRegistry) -> list[Issue]:
    """Every problem of every schedule's event against ``registry`` (the service's schemas)."""
    issues: list[Issue] = []
    for index, spec in enumerate(topology.schedules):
        issues += _issues(index, spec, topology, registry)
    return issues


def _issues(index: int, spec: ScheduleSpec, topology: Topology, registry: LocalSchemaRegistry) -> list[Issue]:
    where = ("schedules", index)
    try:
        model = registry.model(spec.event)
    except SchemaError as exc:
        return [Issue((*where, "event"), f"schedule {spec.name!r}: {exc}")]
    try:
        event = spec.event_for(model, _SAMPLE_ID, datetime(2000, 1, 1, tzinfo=UTC))
    except ValidationError as exc:
        return [
            Issue(
                (*where, "fields", *error["loc"]),
                f"schedule {spec.name!r}: {error['msg']} for {spec.event}"
                + ("" if error["type"] == "missing" else f" (got {_shown(error.get('input'))})"),
            )
            for error in exc.errors(include_url=False)
        ]
    key_field = model.key_field or topology.topic(spec.topic).key_field
    if spec.key is None and key_field is not None:
        value = getattr(event, key_field, None)
        if value is None or value == "":
            reason = f"schedule {spec.name!r}: no key: set 'key' or the key field {key_field!r} in 'fields'"
            return [Issue((*where, "key"), reason)]
    return []


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
