"""When a record starts to count as lag: its due time on a retry topic, its write time anywhere else.

A record in a retry topic (``{source}.{group}.retry.{delay}``) waits on purpose: the worker holds it until its
``kep-due-time`` header. It is not late before then, so lag in seconds counts from the due time, not from the
write time; a retry that is not due yet has 0 seconds of lag (its messages still count as lag in messages: the
retry backlog stays visible). On any other topic, and for a retry record without a readable due time, lag counts
from the record's timestamp. The probe calls :func:`lag_start_ms` on the first unprocessed record, so the
workers' ``kep_consumer_lag_seconds`` and the exporter's ``kep_group_lag_seconds`` agree.

>>> lag_start_ms("orders.billing.retry.1h", 1_000, [("kep-due-time", b"3601000")])
3601000
>>> lag_start_ms("orders", 1_000, [("kep-due-time", b"3601000")])
1000
"""

from __future__ import annotations

import re
from typing import Final

from kep.producers.headers import DUE_TIME, HeaderList, header_int

RETRY_TOPIC: Final = re.compile(r".+\.retry\..+")
"""Names of retry topics, as the dashboard and the alert rules select them (``topic=~".+\\.retry\\..+"``)."""


def is_retry_topic(topic: str) -> bool:
    """True for a retry topic's name (``orders.billing.retry.10s``)."""
    return RETRY_TOPIC.fullmatch(topic) is not None


def lag_start_ms(topic: str, timestamp_ms: int | None, headers: HeaderList | None) -> int | None:
    """The time (ms since the epoch) from which the record counts as late; ``None`` when unknown.

    ``timestamp_ms`` is the record's timestamp (``None`` without one). Only retry topics honour
    ``kep-due-time``: a header on a main topic cannot hide lag.
    """
    if headers and is_retry_topic(topic):
        due = header_int(headers, DUE_TIME)
        if due is not None and due >= 0:
            return due
    return timestamp_ms
