"""Idempotency stores: a redelivered event whose key completed does no second side effect."""

from consumers.idempotency.base import AlreadyCompletedError, ClaimState, IdempotencyStore
from consumers.idempotency.factory import open_store
from consumers.idempotency.memory import MemoryStore
from consumers.idempotency.sqlite import SqliteStore

__all__ = [
    "AlreadyCompletedError",
    "ClaimState",
    "IdempotencyStore",
    "MemoryStore",
    "SqliteStore",
    "open_store",
]
