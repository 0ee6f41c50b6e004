"""Idempotency stores: a redelivered event whose key completed does no second side effect."""

from kep.consumers.idempotency.base import AlreadyCompletedError, ClaimState, IdempotencyStore
from kep.consumers.idempotency.factory import open_store
from kep.consumers.idempotency.memory import MemoryStore
from kep.consumers.idempotency.sqlite import SqliteStore

__all__ = [
    "AlreadyCompletedError",
    "ClaimState",
    "IdempotencyStore",
    "MemoryStore",
    "SqliteStore",
    "open_store",
]
