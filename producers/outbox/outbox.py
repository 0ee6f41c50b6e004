"""``Outbox(conn, topology)``: publish an event from service code in the service's own database transaction.

    with psycopg.connect(dsn) as conn, conn.transaction():
        conn.execute("INSERT INTO orders ...")
        Outbox(conn).publish(OrderPlaced(...))        # the topology of $KEP_TOPOLOGY, or Outbox(conn, topology)

The event is encoded now and written as a row of the outbox table through ``conn``: it is published by the
relay (``kep outbox relay``, or the one inside ``kep run``) if and only if the transaction commits. Works on a
sqlite3 connection too. The connection's transaction is the caller's: ``Outbox`` never begins or commits.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from kep.producers.outbox.record import OutboxRecord, RecordEncoder
from kep.producers.outbox.table import DEFAULT_TABLE, OutboxTable

if TYPE_CHECKING:
    from kep.producers.producer import HeadersArg
    from kep.schemas.codec import EventCodec
    from kep.schemas.events import Event
    from kep.topology.model import Topology

_ENCODERS: dict[int, RecordEncoder] = {}  # id(topology) -> its encoder (holding the topology alive)
_ENCODERS_LOCK = threading.Lock()
_MAX_ENCODERS = 16


def encoder_for(topology: Topology | None, codec: EventCodec | None = None) -> RecordEncoder:
    """The cached encoder of ``topology`` (None: the file ``$KEP_TOPOLOGY`` names, read once); a new one with
    ``codec``. Routes and schemas are resolved once per topology."""
    if topology is None:
        topology = _default_topology()
    if codec is not None:
        return RecordEncoder(topology, codec)
    encoder = _ENCODERS.get(id(topology))
    if encoder is None or encoder.topology is not topology:
        encoder = RecordEncoder(topology)
        with _ENCODERS_LOCK:
            if len(_ENCODERS) >= _MAX_ENCODERS:
                _ENCODERS.clear()
            _ENCODERS[id(topology)] = encoder
    return encoder


_DEFAULT: dict[str, Topology] = {}


def _default_topology() -> Topology:
    from kep.topology.loader import default_topology_path, load_topology

    path = default_topology_path()
    key = str(path)
    topology = _DEFAULT.get(key)
    if topology is None:
        topology = _DEFAULT[key] = load_topology(path)  # TopologyError naming KEP_TOPOLOGY when unset
    return topology


class Outbox:
    """Writes events to the outbox table through ``conn`` (sqlite3 or psycopg), inside its transaction.

    ``topology``: the service's (a loaded ``Topology``, or a ``RecordEncoder`` of one); None reads the file
    ``$KEP_TOPOLOGY`` names, once per process."""

    def __init__(
        self,
        conn: Any,
        topology: Topology | RecordEncoder | None = None,
        *,
        codec: EventCodec | None = None,
        table: str = DEFAULT_TABLE,
    ) -> None:
        self._conn = conn
        self._table = OutboxTable.for_connection(conn, table)
        self._encoder = topology if isinstance(topology, RecordEncoder) else encoder_for(topology, codec)

    def publish(
        self,
        event: Event,
        *,
        key: str | bytes | None = None,
        topic: str | None = None,
        headers: HeadersArg | None = None,
        traceparent: str | None = None,
        causation_id: str | None = None,
    ) -> int:
        """Write ``event`` to the outbox; its ordering id. Topic and key as ``EventProducer.publish`` chooses
        them; raises what it raises (``RoutingError``, ``MissingKeyError``, ...) before anything is written."""
        record = self._encoder.encode(
            event, topic=topic, key=key, headers=headers, traceparent=traceparent, causation_id=causation_id
        )
        return self.write(record)

    def write(self, record: OutboxRecord) -> int:
        """Write an already encoded record; its ordering id."""
        return self._table.insert(self._conn, record)

    def create_table(self) -> None:
        """Create the outbox table if it does not exist (the relay and ``kep run`` also do at start)."""
        self._table.create(self._conn)
