"""The relay's metrics: its backlog (unsent rows, age of the oldest) and what it published.

Names (``docs/metrics.md``): ``kep_outbox_unsent_rows``, ``kep_outbox_oldest_unsent_age_seconds``,
``kep_outbox_published_total``, ``kep_outbox_relay_active``; one label, ``table`` (the outbox table). Every
relay reports the backlog, the active one and those standing by alike, so the figure survives the loss of the
active relay's pod.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge

OUTBOX_UNSENT_ROWS: Final = "kep_outbox_unsent_rows"
OUTBOX_OLDEST_UNSENT_AGE_SECONDS: Final = "kep_outbox_oldest_unsent_age_seconds"
OUTBOX_PUBLISHED_TOTAL: Final = "kep_outbox_published_total"
OUTBOX_RELAY_ACTIVE: Final = "kep_outbox_relay_active"
OUTBOX_METRIC_NAMES: Final[frozenset[str]] = frozenset(
    {OUTBOX_UNSENT_ROWS, OUTBOX_OLDEST_UNSENT_AGE_SECONDS, OUTBOX_PUBLISHED_TOTAL, OUTBOX_RELAY_ACTIVE}
)


class RelayMetrics:
    def __init__(self, table: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        labels = ["table"]
        self._unsent = Gauge(
            OUTBOX_UNSENT_ROWS, "Outbox rows not published yet.", labels, registry=self.registry
        ).labels(table)
        self._age = Gauge(
            OUTBOX_OLDEST_UNSENT_AGE_SECONDS,
            "Age of the oldest outbox row not published yet (0 when none waits).",
            labels,
            registry=self.registry,
        ).labels(table)
        self._published = Counter(
            # prometheus_client adds _total to a counter's name
            OUTBOX_PUBLISHED_TOTAL.removesuffix("_total"),
            "Outbox rows published (and marked sent) by this relay.",
            labels,
            registry=self.registry,
        ).labels(table)
        self._active = Gauge(
            OUTBOX_RELAY_ACTIVE,
            "1 while this relay holds the outbox's lock and publishes, 0 while it stands by.",
            labels,
            registry=self.registry,
        ).labels(table)

    def backlog(self, unsent: int, oldest_age_s: float | None) -> None:
        self._unsent.set(unsent)
        self._age.set(oldest_age_s or 0.0)

    def published(self, rows: int) -> None:
        self._published.inc(rows)

    def active(self, active: bool) -> None:
        self._active.set(1 if active else 0)
