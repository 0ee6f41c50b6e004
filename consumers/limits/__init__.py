"""Rate and concurrency limits of handlers, shared by every replica through the idempotency store's database.

See docs/limits.md. ``gate.py`` holds a limited message back in its lane; ``gcra.py`` is the rate algorithm;
``memory.py``, ``sqlite.py``, ``redis.py`` and ``postgres.py`` keep the state atomically.
"""

from kep.consumers.limits.errors import LimitStoreError
from kep.consumers.limits.factory import open_limit_store
from kep.consumers.limits.gate import Limit, LimitGate, Limits
from kep.consumers.limits.metrics import LIMIT_METRIC_NAMES, LimitMetrics
from kep.consumers.limits.setup import worker_limits
from kep.consumers.limits.store import LimitStore

__all__ = [
    "LIMIT_METRIC_NAMES",
    "Limit",
    "LimitGate",
    "LimitMetrics",
    "LimitStore",
    "LimitStoreError",
    "Limits",
    "open_limit_store",
    "worker_limits",
]
