"""Errors raised while reading consumer lag.

Hierarchy::

    KepError
    └── ConsumerError
        └── LagError              a lag setting or request that cannot work (bad group filter, bad window)
            └── LagReadError      the cluster did not answer a lag read (names the group or topic, and why)
"""

from __future__ import annotations

from kep.consumers.errors import ConsumerError


class LagError(ConsumerError):
    """Root of the lag package's errors."""


class LagReadError(LagError):
    """Committed offsets, log offsets or group descriptions could not be read from the cluster."""
