"""What a handler knows about the message it handles."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import Message

from kep.consumers.idempotency.base import IdempotencyStore
from kep.producers import headers as h

Headers = list[tuple[str, bytes | None]]


class MessageContext:
    """Coordinates and metadata of the message being handled.

    ``attempt`` is 1 on the first execution and grows with every retry (in place or through retry topics).
    ``topic`` is the topic the event was first published to, also when it arrives from a retry topic
    (``received_from`` then names the retry topic). Fields other than ``attempt`` and ``idempotency_key`` are
    read from the message when first asked for: a handler pays only for what it uses.
    """

    __slots__ = (
        "group",
        "topic",
        "attempt",
        "idempotency_key",
        "event_type",
        "completed_in_transaction",
        "first_failure_ms",
        "_msg",
        "_store",
    )

    def __init__(
        self,
        msg: Message,
        *,
        group: str,
        topic: str,
        attempt: int,
        idempotency_key: str,
        event_type: str | None,
        store: IdempotencyStore | None = None,
    ) -> None:
        self._msg = msg
        self._store = store
        self.group = group
        self.topic = topic
        self.attempt = attempt
        self.idempotency_key = idempotency_key
        self.event_type = event_type
        self.completed_in_transaction = False
        self.first_failure_ms: int | None = None

    @property
    def partition(self) -> int:
        return self._msg.partition()  # type: ignore[return-value]

    @property
    def offset(self) -> int:
        return self._msg.offset()  # type: ignore[return-value]

    @property
    def key(self) -> bytes | None:
        return self._msg.key()

    @property
    def headers(self) -> Headers:
        return self._msg.headers() or []  # type: ignore[return-value]

    @property
    def timestamp_ms(self) -> int:
        return self._msg.timestamp()[1]

    @property
    def received_from(self) -> str:
        """The topic the message was read from: ``topic``, or one of its retry topics."""
        return self._msg.topic()  # type: ignore[return-value]

    @property
    def traceparent(self) -> str | None:
        return h.header_str(self._msg.headers(), h.TRACEPARENT)

    def header(self, name: str) -> bytes | None:
        """The first header called ``name``, or None."""
        return h.header_bytes(self._msg.headers(), name)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """The idempotency store's own transaction (a psycopg or sqlite3 connection, a Redis MULTI pipeline).

        Write the handler's side effects through it: they and the event's idempotency key are committed
        together, so a redelivered event can never apply them twice.
        """
        if self._store is None or not self._store.supports_transactions:
            raise NotImplementedError("this worker's idempotency store does not offer transactions")
        with self._store.transaction(self.idempotency_key) as tx:
            yield tx
        self.completed_in_transaction = True

    def __repr__(self) -> str:
        return (
            f"MessageContext(group={self.group!r}, topic={self.topic!r}, partition={self.partition}, "
            f"offset={self.offset}, attempt={self.attempt}, idempotency_key={self.idempotency_key!r})"
        )
