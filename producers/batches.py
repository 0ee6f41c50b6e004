"""Batches of events: one batch id and the batch size on every member, so consumers can tell when all of a
batch is done (see ``docs/batches.md``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from kep.producers import headers as h
from kep.producers.delivery import DeliveryReport
from kep.producers.errors import ProducerError
from kep.schemas.events import Event

#: Longest batch id accepted (it travels in a header of every member and keys the batch's status).
MAX_BATCH_ID_LENGTH = 200


class InvalidBatchError(ProducerError):
    """A batch that cannot be tracked: empty, a member id twice, or an unusable batch id."""


@dataclass(frozen=True, slots=True)
class BatchReport:
    """Where the broker stored each member of a batch, in the order the events were given."""

    batch_id: str
    reports: tuple[DeliveryReport, ...]

    @property
    def size(self) -> int:
        return len(self.reports)


def new_batch_id() -> str:
    return str(uuid.uuid4())


def check_batch_id(batch_id: str) -> str:
    """``batch_id`` when usable: 1 to 200 visible ASCII characters."""
    if not batch_id or len(batch_id) > MAX_BATCH_ID_LENGTH:
        raise InvalidBatchError(f"a batch id has 1 to {MAX_BATCH_ID_LENGTH} characters, not {len(batch_id)}")
    if not all(33 <= ord(c) <= 126 for c in batch_id):
        raise InvalidBatchError("a batch id is visible ASCII characters (no spaces or control characters)")
    return batch_id


def check_members(events: Sequence[Event]) -> None:
    """A batch has at least one event and no event id twice (members are counted by id)."""
    if not events:
        raise InvalidBatchError("a batch needs at least one event")
    seen: dict[str, int] = {}
    for index, event in enumerate(events):
        key = event.idempotency_key()
        if key in seen:
            raise InvalidBatchError(f"events {seen[key]} and {index} of the batch have the same id {key!r}")
        seen[key] = index


def batch_headers(batch_id: str, size: int) -> list[tuple[str, h.HeaderValue]]:
    """The headers every member of a batch carries."""
    return [(h.BATCH_ID, batch_id.encode()), (h.BATCH_SIZE, h.encode_int(size))]
