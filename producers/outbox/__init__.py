"""The transactional outbox: events written in the service's own database transaction, published by a relay.

``Outbox(conn, topology).publish(event)`` in service code, ``ctx.publish(event)`` in a handler (inside
``ctx.transaction()``); ``OutboxRelay`` (``kep outbox relay``, and inside ``kep run``) publishes the rows in id
order, exactly once on Apache Kafka (``docs/outbox.md``).
"""

from kep.producers.errors import OutboxError
from kep.producers.outbox.database import OutboxDatabase
from kep.producers.outbox.metrics import OUTBOX_METRIC_NAMES, RelayMetrics
from kep.producers.outbox.outbox import Outbox
from kep.producers.outbox.record import OutboxRecord, RecordEncoder
from kep.producers.outbox.relay import OutboxRelay, RelayThread
from kep.producers.outbox.settings import OutboxSettings
from kep.producers.outbox.table import DEFAULT_TABLE, OutboxTable

__all__ = [
    "DEFAULT_TABLE",
    "OUTBOX_METRIC_NAMES",
    "Outbox",
    "OutboxDatabase",
    "OutboxError",
    "OutboxRecord",
    "OutboxRelay",
    "OutboxSettings",
    "OutboxTable",
    "RecordEncoder",
    "RelayMetrics",
    "RelayThread",
]
