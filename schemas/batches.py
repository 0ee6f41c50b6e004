"""kep's own events, namespace ``kep.batches``: a batch of events is done in a consumer group.

``BatchCompleted`` is published by the consumer group once every member of a batch (``EventProducer.
publish_batch``, the intake's batch endpoint) has been handled or dead-lettered there, to the one topic of the
topology whose ``value_schema`` names ``kep.batches.BatchCompleted``. Its event id is derived from the group and
the batch id, so any copy of it is processed once.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from pydantic import Field

from kep.schemas.events import Event

__all__ = ["BatchCompleted", "batch_completed_id"]


def batch_completed_id(group: str, batch_id: str) -> str:
    """The event id of the ``BatchCompleted`` of ``batch_id`` in ``group``: the same on every replica."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kep-batch-completed:{group}:{batch_id}"))


class BatchCompleted(Event):
    """Every event of a batch reached a final state (handled or dead-lettered) in a consumer group."""

    avro_name: ClassVar[str] = "kep.batches.BatchCompleted"
    key_field: ClassVar[str | None] = "batch_id"

    batch_id: str = Field(min_length=1, description="The batch.")
    group: str = Field(min_length=1, description="The consumer group that finished it.")
    total: int = Field(ge=1, description="Events in the batch.")
    handled: int = Field(ge=0, description="Members handled successfully.")
    dead_lettered: int = Field(
        ge=0, description="Members dead-lettered (or dropped where dead letters are off)."
    )
    dead_lettered_ids: list[str] = Field(description="Event ids of the dead-lettered members.")
