"""Errors raised by the worker metrics and its HTTP server.

Hierarchy::

    KepError
    └── ConsumerError
        └── MetricsError          a metric used against its contract (unknown label value, bad argument)
            └── MetricsServerError the HTTP server cannot bind its port (names host and port)
"""

from __future__ import annotations

from kep.consumers.errors import ConsumerError


class MetricsError(ConsumerError):
    """A metric was used against its contract, e.g. an unbounded or unknown label value."""


class MetricsServerError(MetricsError):
    """The metrics HTTP server could not start; the message names the host and port."""
