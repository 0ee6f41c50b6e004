"""Event status and batches: what became of each event in each consumer group, and when a batch is done.

Workers record outcomes through the ``Outcomes`` hook (``hook.py``) into a ``StatusStore`` that lives beside
the idempotency keys; ``StatusView`` reads them for ``GET /events/{id}``, ``GET /batches/{id}`` and
``kep status``. See ``docs/batches.md``.
"""

from kep.consumers.status.factory import open_status_store
from kep.consumers.status.hook import NO_OUTCOMES, Outcomes
from kep.consumers.status.model import FINAL_STATES, BatchProgress, EventStatus
from kep.consumers.status.store import MemoryStatusStore, StatusStore
from kep.consumers.status.view import StatusView

__all__ = [
    "FINAL_STATES",
    "NO_OUTCOMES",
    "BatchProgress",
    "EventStatus",
    "MemoryStatusStore",
    "Outcomes",
    "StatusStore",
    "StatusView",
    "open_status_store",
]
