"""Errors of the limits.

Hierarchy::

    KepError
    └── ConsumerError
        └── LimitStoreError   the store that keeps the limits' state cannot answer now (waited out)
"""

from __future__ import annotations

from kep.consumers.errors import ConsumerError


class LimitStoreError(ConsumerError):
    """The store that keeps rate and concurrency state is unreachable or failed: the message waits."""
