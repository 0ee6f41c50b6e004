"""What a handler knows about the message it handles."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from consumers.idempotency.base import IdempotencyStore

Headers = list[tuple[str, bytes | None]]


@dataclass(slots=True)
class MessageContext:
    """Coordinates and metadata of the message being handled.

    ``attempt`` is 1 on the first execution and grows with every retry (in place or through retry topics).
    ``topic`` is the topic the event was first published to, also when it arrives from a retry topic
    (``received_from`` then names the retry topic).
    """

    group: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: Headers
    timestamp_ms: int
    attempt: int
    idempotency_key: str
    event_type: str | None
    received_from: str
    traceparent: str | None = None
    _store: IdempotencyStore | None = field(default=None, repr=False)
    completed_in_transaction: bool = field(default=False, repr=False)
    first_failure_ms: int | None = field(default=None, repr=False)

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """The idempotency store's own transaction (a psycopg or sqlite3 connection, a Redis MULTI pipeline).

        Write the handler's side effects through it: they and the event's idempotency key are committed together,
        so a redelivered event can never apply them twice.
        """
        if self._store is None or not self._store.supports_transactions:
            raise NotImplementedError("this worker's idempotency store does not offer transactions")
        with self._store.transaction(self.idempotency_key) as tx:
            yield tx
        self.completed_in_transaction = True
