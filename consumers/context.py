"""What a handler knows about the message it handles."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from confluent_kafka import Message

from kep.consumers.errors import IdempotencyStoreError
from kep.consumers.idempotency.base import IdempotencyStore, Key
from kep.producers import headers as h

if TYPE_CHECKING:
    from kep.consumers.outbox import HandlerOutbox
    from kep.consumers.retry.headers import Provenance
    from kep.producers.producer import HeadersArg
    from kep.schemas.events import Event

Headers = list[tuple[str, bytes | None]]


class MessageContext:
    """Coordinates and metadata of the message being handled.

    ``attempt`` is 1 on the first execution and grows with every retry (in place or through retry topics).
    ``topic`` is the topic the event was first published to, also when it arrives from a retry topic
    (``received_from`` then names the retry topic). Fields other than ``attempt`` and ``idempotency_key`` are
    read from the message when first asked for: a handler pays only for what it uses.

    ``idempotency_key`` is text: a key header that is not UTF-8 is shown with backslash escapes, while the store
    is asked about its exact bytes.
    """

    __slots__ = (
        "group",
        "topic",
        "attempt",
        "idempotency_key",
        "event_type",
        "completed_in_transaction",
        "store_error",
        "store_key",
        "provenance",
        "_msg",
        "_store",
        "event_id",
        "_outbox",
        "_tx",
        "_headers",
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
        store_key: Key | None = None,
        provenance: Provenance | None = None,
        event_id: str | None = None,
        outbox: HandlerOutbox | None = None,
        headers: Headers | None = None,
    ) -> None:
        self._msg = msg
        self._headers = headers  # the message's headers, when the caller read them already (read once)
        self._store = store
        self.group = group
        self.topic = topic
        self.attempt = attempt
        self.idempotency_key = idempotency_key
        self.event_type = event_type
        self.completed_in_transaction = False
        #: Set when the store failed inside ``transaction()``: the runtime then waits for the store and runs
        #: the message again, instead of counting a failure of the handler.
        self.store_error: IdempotencyStoreError | None = None
        self.store_key: Key = idempotency_key if store_key is None else store_key
        #: What a record from a retry tier carried (``None`` on a main topic, or when unreadable).
        self.provenance = provenance
        #: The handled event's id (``kep-causation-id`` of what ``publish`` writes).
        self.event_id = event_id
        self._outbox = outbox
        self._tx: Any = None

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
        """The message's headers, in order (the same list on every call: do not change it)."""
        if self._headers is None:
            self._headers = self._msg.headers() or []  # type: ignore[assignment]
        return self._headers  # type: ignore[return-value]

    @property
    def timestamp_ms(self) -> int:
        return self._msg.timestamp()[1]

    @property
    def received_from(self) -> str:
        """The topic the message was read from: ``topic``, or one of its retry topics."""
        return self._msg.topic()  # type: ignore[return-value]

    @property
    def traceparent(self) -> str | None:
        return h.header_str(self.headers, h.TRACEPARENT)

    def header(self, name: str) -> bytes | None:
        """The first header called ``name``, or None."""
        return h.header_bytes(self.headers, name)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """The idempotency store's own transaction (a psycopg or sqlite3 connection, a Redis MULTI pipeline).

        Write the handler's side effects through it: they and the event's idempotency key are committed
        together, so a redelivered event can never apply them twice. When the store itself fails (its
        connection drops), nothing was committed and the runtime runs the event again once the store answers:
        that is not a failure of the handler and uses up no attempt.
        """
        if self._store is None or not self._store.supports_transactions:
            raise NotImplementedError("this worker's idempotency store does not offer transactions")
        try:
            with self._store.transaction(self.store_key) as tx:
                self._tx = tx
                yield tx
        except IdempotencyStoreError as exc:
            self.store_error = exc
            raise
        finally:
            self._tx = None
        self.completed_in_transaction = True

    def publish(
        self,
        event: Event,
        *,
        key: str | bytes | None = None,
        topic: str | None = None,
        headers: HeadersArg | None = None,
    ) -> int:
        """Write a follow-up ``event`` to the outbox in this message's transaction; its outbox id.

        Only inside ``with ctx.transaction()`` on an SQL store (SQLite, PostgreSQL): the event is published
        (by the outbox relay) if and only if the handler's writes and the idempotency key commit. Anywhere
        else it raises ``OutboxError`` and writes nothing. Topic and key as ``EventProducer.publish`` chooses
        them; the record carries ``kep-causation-id`` (this event's id) and this message's ``traceparent``.
        """
        from kep.producers.errors import OutboxError

        if self._outbox is None:
            raise OutboxError("ctx.publish: this worker has no outbox (build it with build_worker)")
        return self._outbox.publish(
            self._tx,
            event,
            key=key,
            topic=topic,
            headers=headers,
            causation_id=self.event_id,
            traceparent=self.traceparent,
        )

    def __repr__(self) -> str:
        return (
            f"MessageContext(group={self.group!r}, topic={self.topic!r}, partition={self.partition}, "
            f"offset={self.offset}, attempt={self.attempt}, idempotency_key={self.idempotency_key!r})"
        )
