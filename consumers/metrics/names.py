"""Every metric name kep exports, in one place. Documented in ``docs/metrics.md``.

Names follow the Prometheus conventions: the ``kep_`` prefix, base units (``_seconds``, ``_messages``),
``_total`` on counters. Labels are bounded: ``group``, ``topic``, ``partition``, ``kind``, ``exception``,
``tier``, ``status``, ``version``; never message keys or pod names.
"""

from __future__ import annotations

from typing import Final

# Worker: scrape-time state (the collector in ``consumers.metrics.collector``).
CONSUMER_LAG_MESSAGES: Final = "kep_consumer_lag_messages"
CONSUMER_PROCESSED_LAG_MESSAGES: Final = "kep_consumer_processed_lag_messages"
CONSUMER_LAG_SECONDS: Final = "kep_consumer_lag_seconds"
CONSUMER_LOG_END_OFFSET: Final = "kep_consumer_log_end_offset"
CONSUMER_COMMITTED_OFFSET: Final = "kep_consumer_committed_offset"
CONSUMER_PROCESSED_OFFSET: Final = "kep_consumer_processed_offset"
CONSUMER_ASSIGNED_PARTITIONS: Final = "kep_consumer_assigned_partitions"
CONSUMER_PAUSED_PARTITIONS: Final = "kep_consumer_paused_partitions"
CONSUMER_IN_FLIGHT_MESSAGES: Final = "kep_consumer_in_flight_messages"
CONSUMER_LAG_PROBE_TIMESTAMP_SECONDS: Final = "kep_consumer_lag_probe_timestamp_seconds"

# Worker: hot-path counters and histograms (``consumers.metrics.worker``).
CONSUMER_REBALANCES_TOTAL: Final = "kep_consumer_rebalances_total"
MESSAGES_PROCESSED_TOTAL: Final = "kep_messages_processed_total"
MESSAGES_FAILED_TOTAL: Final = "kep_messages_failed_total"
MESSAGES_RETRIED_TOTAL: Final = "kep_messages_retried_total"
MESSAGES_DEAD_LETTERED_TOTAL: Final = "kep_messages_dead_lettered_total"
MESSAGES_DUPLICATE_SKIPPED_TOTAL: Final = "kep_messages_duplicate_skipped_total"
HANDLER_DURATION_SECONDS: Final = "kep_handler_duration_seconds"
COMMIT_DURATION_SECONDS: Final = "kep_commit_duration_seconds"
COMMIT_FAILURES_TOTAL: Final = "kep_commit_failures_total"
BUILD_INFO: Final = "kep_build_info"

# Every name a worker exports (what ``WorkerMetrics`` puts on its registry). The standalone lag exporter's
# names (``kep_group_*``, ``kep_partition_status``, ``kep_exporter_*``) belong to ``consumers.lag``.
METRIC_NAMES: Final[frozenset[str]] = frozenset(
    {
        CONSUMER_LAG_MESSAGES,
        CONSUMER_PROCESSED_LAG_MESSAGES,
        CONSUMER_LAG_SECONDS,
        CONSUMER_LOG_END_OFFSET,
        CONSUMER_COMMITTED_OFFSET,
        CONSUMER_PROCESSED_OFFSET,
        CONSUMER_ASSIGNED_PARTITIONS,
        CONSUMER_PAUSED_PARTITIONS,
        CONSUMER_IN_FLIGHT_MESSAGES,
        CONSUMER_LAG_PROBE_TIMESTAMP_SECONDS,
        CONSUMER_REBALANCES_TOTAL,
        MESSAGES_PROCESSED_TOTAL,
        MESSAGES_FAILED_TOTAL,
        MESSAGES_RETRIED_TOTAL,
        MESSAGES_DEAD_LETTERED_TOTAL,
        MESSAGES_DUPLICATE_SKIPPED_TOTAL,
        HANDLER_DURATION_SECONDS,
        COMMIT_DURATION_SECONDS,
        COMMIT_FAILURES_TOTAL,
        BUILD_INFO,
    }
)

REBALANCE_KINDS: Final[tuple[str, ...]] = ("assign", "revoke", "lost")
