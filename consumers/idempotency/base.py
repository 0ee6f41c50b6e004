"""The idempotency store interface.

A key moves through three states: absent, *claimed* (a worker is running the handler; the claim is a lease that
expires if the worker dies) and *done* (the handler's effects are complete; kept for a TTL). ``claim`` answers
``NEW`` (run the handler), ``DONE`` (skip: a redelivery) or ``BUSY`` (another live worker holds the claim: try
again later). Stores that can, offer ``transaction(key)``: the handler writes its side effects in the store's own
transaction and the key is completed in that same transaction, so effects happen exactly once.
"""

from __future__ import annotations

import enum
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kep.consumers.errors import ConsumerError


class ClaimState(enum.Enum):
    NEW = "new"
    DONE = "done"
    BUSY = "busy"


class AlreadyCompletedError(ConsumerError):
    """Raised out of ``transaction()`` when the key was completed meanwhile: the transaction was rolled back."""


class IdempotencyStore(ABC):
    """One namespace (the consumer group) of idempotency keys."""

    def __init__(self, namespace: str, *, ttl_s: float, lease_s: float) -> None:
        self.namespace = namespace
        self.ttl_s = ttl_s
        self.lease_s = lease_s
        self.owner = uuid.uuid4().hex  # this worker's identity in claims

    @abstractmethod
    def claim(self, key: str) -> ClaimState:
        """Claim ``key`` for this worker for ``lease_s`` seconds."""

    @abstractmethod
    def complete(self, key: str) -> None:
        """Mark ``key`` done for ``ttl_s`` seconds."""

    @abstractmethod
    def release(self, key: str) -> None:
        """Give up this worker's claim (the handler failed), so a retry can claim it."""

    @contextmanager
    def transaction(self, key: str) -> Iterator[Any]:
        """Yield a store-native transaction; on success the key is completed in it atomically."""
        raise NotImplementedError(f"{type(self).__name__} does not offer handler transactions")
        yield  # pragma: no cover

    @property
    def supports_transactions(self) -> bool:
        return False

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(namespace={self.namespace!r})"
