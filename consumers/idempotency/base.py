"""The idempotency store interface.

A key moves through three states: absent, *claimed* (a worker is running the handler; the claim is a lease that
expires if the worker dies) and *done* (the handler's effects are complete; kept for a TTL). ``claim`` answers
``NEW`` (run the handler), ``DONE`` (skip: a redelivery) or ``BUSY`` (another live worker holds the claim: try
again later). Stores that can, offer ``transaction(key)``: the handler writes its side effects in the store's own
transaction and the key is completed in that same transaction, so effects happen exactly once.

Batches: ``claim_many``, ``complete_many`` and ``release_many`` do what the per-key methods do for several
distinct keys at once: one transaction (SQLite, PostgreSQL) or one pipeline (Redis) instead of one per key.
Each key's answer is the one ``claim`` would have given; a batch either happens as a whole or raises
``IdempotencyStoreError`` (a partly applied ``release_many`` or ``claim_many`` leaves leases that expire by
themselves, as after a crash). The defaults loop over the per-key methods; ``batches`` says whether a store
does better than that, and the runtime batches only then.

A key is any bytes (or text, taken as UTF-8) of any length: it comes from a header whoever produced the record
chose. The shared stores keep a digest of it (:func:`digest`), so NUL bytes, invalid UTF-8 and 100 KB keys
are stored like any other.

Errors: :class:`~kep.consumers.errors.IdempotencyStoreError` means "the store cannot answer now" and is waited
out, never taken for an answer. ``AlreadyCompletedError`` is raised only when the key really is done.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from kep.consumers.errors import ConsumerError

#: An idempotency key: bytes as they came, or text (stored as its UTF-8 bytes).
Key = str | bytes


def key_bytes(key: Key) -> bytes:
    """The bytes of ``key``; text is UTF-8 (lone surrogates kept as they were decoded)."""
    return key if isinstance(key, bytes) else key.encode("utf-8", "surrogateescape")


def digest(key: Key) -> str:
    """What the shared stores keep for ``key``: 40 hex digits of its BLAKE2b-160 digest."""
    return hashlib.blake2b(key_bytes(key), digest_size=20).hexdigest()


class ClaimState(enum.Enum):
    NEW = "new"
    DONE = "done"
    BUSY = "busy"


class AlreadyCompletedError(ConsumerError):
    """Raised out of ``transaction()`` when the key was completed meanwhile (by this worker in an earlier run
    whose acknowledgement was lost, or by another): the transaction was rolled back. Only a key that is really
    done raises it; a claim lost to an expired lease or a dropped connection is an ``IdempotencyStoreError``."""


class IdempotencyStore(ABC):
    """One namespace (the consumer group) of idempotency keys."""

    def __init__(self, namespace: str, *, ttl_s: float, lease_s: float) -> None:
        self.namespace = namespace
        self.ttl_s = ttl_s
        self.lease_s = lease_s
        self.owner = uuid.uuid4().hex  # this worker's identity in claims

    @abstractmethod
    def claim(self, key: Key) -> ClaimState:
        """Claim ``key`` for this worker for ``lease_s`` seconds."""

    @abstractmethod
    def complete(self, key: Key) -> None:
        """Mark ``key`` done for ``ttl_s`` seconds."""

    @abstractmethod
    def release(self, key: Key) -> None:
        """Give up this worker's claim (the handler failed), so a retry can claim it."""

    # -- batches: the per-key methods for several distinct keys, in one round trip where the store can ----------
    @property
    def batches(self) -> bool:
        """True when ``claim_many`` / ``complete_many`` / ``release_many`` cost less than a call per key."""
        return False

    def claim_many(self, keys: Sequence[Key]) -> list[ClaimState]:
        """``claim`` for each of ``keys`` (distinct), the answers in the same order."""
        return [self.claim(key) for key in keys]

    def complete_many(self, keys: Sequence[Key]) -> None:
        """``complete`` for each of ``keys`` (distinct)."""
        for key in keys:
            self.complete(key)

    def release_many(self, keys: Sequence[Key]) -> None:
        """``release`` for each of ``keys`` (distinct): only this worker's claims are given up."""
        for key in keys:
            self.release(key)

    def settle_many(self, done: Sequence[Key], released: Sequence[Key]) -> None:
        """``release_many(released)``, then ``complete_many(done)``: a lane's flush. A store that batches does
        both in one transaction or round trip; a key in both ends done."""
        if released:
            self.release_many(released)
        if done:
            self.complete_many(done)

    @contextmanager
    def transaction(self, key: Key) -> Iterator[Any]:
        """Yield a store-native transaction; on success the key is completed in it atomically."""
        raise NotImplementedError(f"{type(self).__name__} does not offer handler transactions")
        yield  # pragma: no cover

    @property
    def supports_transactions(self) -> bool:
        return False

    def check(self) -> None:  # noqa: B027 - optional hook
        """Raise ``IdempotencyStoreError`` when the store cannot be reached (the worker checks at start)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(namespace={self.namespace!r})"
