"""``ctx.publish``: a handler's follow-up events, written to the outbox in the message's own transaction.

Inside ``with ctx.transaction() as tx:`` the event becomes a row of the outbox table (``kep.producers.outbox``)
written through ``tx``: it commits with the handler's writes and the message's idempotency key, or not at
all. The relay publishes it afterwards, with ``kep-causation-id`` (the handled event's id) and the handled
message's ``traceparent``. Outside ``ctx.transaction()``, and on a worker whose store has no SQL transaction
(memory://, redis://), ``ctx.publish`` raises ``OutboxError`` and writes nothing: an event published beside
the transaction rather than in it would be exactly the lost-or-doubled event the outbox exists to prevent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from kep.consumers.idempotency.base import IdempotencyStore
from kep.producers.errors import OutboxError
from kep.producers.outbox.database import OutboxDatabase
from kep.producers.outbox.record import RecordEncoder, usable_traceparent
from kep.producers.outbox.settings import OutboxSettings
from kep.producers.outbox.table import DEFAULT_TABLE, OutboxTable
from kep.schemas.settings import settings_problems

if TYPE_CHECKING:
    from kep.producers.producer import HeadersArg
    from kep.schemas.codec import EventCodec
    from kep.schemas.events import Event
    from kep.topology.model import Topology


class HandlerOutbox:
    """What a worker's contexts write follow-up events with. ``store_kind``: the idempotency store's URL
    scheme, named in the error of a store that cannot hold an outbox row."""

    def __init__(
        self, encoder: RecordEncoder, *, table: str = DEFAULT_TABLE, store_kind: str = "sql"
    ) -> None:
        self.encoder = encoder
        self.table = table
        self.store_kind = store_kind

    def publish(
        self,
        tx: Any,
        event: Event,
        *,
        key: str | bytes | None,
        topic: str | None,
        headers: HeadersArg | None,
        causation_id: str | None,
        traceparent: str | None,
    ) -> int:
        if self.store_kind not in ("sqlite", "postgresql", "postgres", "sql"):
            raise OutboxError(
                f"ctx.publish needs an SQL idempotency store (sqlite:/// or postgresql://); this worker's is "
                f"{self.store_kind}://, whose transactions cannot hold an outbox row. Publish with an "
                "EventProducer instead (not atomic with the handler's writes), or use an SQL store"
            )
        if tx is None:
            raise OutboxError(
                "ctx.publish must be called inside `with ctx.transaction() as tx:`: the event is written to the "
                "outbox in that transaction, with the handler's writes and the message's idempotency key"
            )
        record = self.encoder.encode(
            event,
            topic=topic,
            key=key,
            headers=headers,
            traceparent=usable_traceparent(traceparent),
            causation_id=causation_id,
        )
        return OutboxTable.for_connection(tx, self.table).insert(tx, record)


def store_url(store: IdempotencyStore) -> str | None:
    """The SQL database an idempotency store keeps its keys in, as a URL; None for memory and Redis."""
    from kep.consumers.idempotency.postgres import PostgresStore
    from kep.consumers.idempotency.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        return f"sqlite:///{store.path}"
    if isinstance(store, PostgresStore):
        return str(store._dsn)
    return None


def handler_outbox(
    store: IdempotencyStore, topology: Topology, codec: EventCodec, settings: OutboxSettings | None = None
) -> HandlerOutbox:
    """The outbox of a worker's contexts; on an SQL store its table is created now if it does not exist."""
    if settings is None:
        try:
            settings = OutboxSettings()
        except (ValidationError, SettingsError) as exc:
            raise OutboxError(f"invalid outbox settings: {settings_problems(exc, 'outbox.')}") from None
    url = store_url(store)
    if url is None:
        kind = type(store).__name__.removesuffix("Store").lower() or "unknown"
        return HandlerOutbox(RecordEncoder(topology, codec), table=settings.table, store_kind=kind)
    db = OutboxDatabase(url, settings.table)
    try:
        db.create()
    except db.errors as exc:
        raise OutboxError(f"outbox table {settings.table!r} in {db.where}: {exc}") from exc
    finally:
        db.reset()
    return HandlerOutbox(RecordEncoder(topology, codec), table=settings.table, store_kind=db.table.dialect)
